"""TLS and plain HTTP on one port, HTTP/2 to clients: the proxy process with a throwaway CA's
leaf (``tls_support``), Python backends, and real clients: curl (``--http2``/``--http1.1``,
both schemes), nghttp and h2load (Debian ``nghttp2-client``), httpx over h2, websockets over
TLS, and raw sockets for what a well-behaved client would never send."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
from gateway_support import BackendState, Gateway, backend, gateway, ws_echo
from tls_support import CertFiles, client_context, make_cert

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
needs_nghttp = pytest.mark.skipif(
    shutil.which("nghttp") is None or shutil.which("h2load") is None,
    reason="nghttp2-client (nghttp, h2load) is not installed",
)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_app(tmp_path: Path, cert: CertFiles) -> Iterator[tuple[Gateway, BackendState]]:
    with backend() as (port, state):
        routes = [{"name": "app.localhost", "target": f"http://127.0.0.1:{port}"}]
        spec = {"tls": {"cert": str(cert.cert), "key": str(cert.key)}}
        with gateway(tmp_path, routes, **spec) as gw:
            yield gw, state


def curl(gw: Gateway, cert: CertFiles, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    host = url.split("//", 1)[1].split(":", 1)[0]
    argv = ["curl", "-sS", "--max-time", "10", "--cacert", str(cert.ca)]
    argv += ["--resolve", f"{host}:{gw.port}:127.0.0.1", "-w", "\n%{http_version} %{http_code}"]
    return subprocess.run([*argv, *args, url], capture_output=True, text=True, timeout=20)


@needs_curl
@pytest.mark.parametrize(
    ("flag", "scheme", "version", "protocol"),
    [
        ("--http2", "https", "2", "h2"),
        ("--http1.1", "https", "1.1", "http/1.1"),
        ("--http2", "http", "1.1", "http/1.1"),  # no h2c upgrade offered: stays HTTP/1.1
        ("--http1.1", "http", "1.1", "http/1.1"),
    ],
)
def test_curl_both_schemes_on_one_port(
    tls_app: tuple[Gateway, BackendState],
    cert: CertFiles,
    flag: str,
    scheme: str,
    version: str,
    protocol: str,
) -> None:
    gw, state = tls_app
    r = curl(gw, cert, f"{scheme}://app.localhost:{gw.port}/hi", flag)
    assert r.returncode == 0, r.stderr
    body, _, status = r.stdout.rpartition("\n")
    assert (body, status) == ("hello from /hi", f"{version} 200")
    assert state.headers[-1]["host"] == f"app.localhost:{gw.port}"
    record = gw.records(at_least=1)[-1]
    assert (record["protocol"], record["tls"]) == (protocol, scheme == "https")


@needs_curl
def test_h2_bodies_both_ways(tls_app: tuple[Gateway, BackendState], cert: CertFiles) -> None:
    gw, _ = tls_app
    url = f"https://app.localhost:{gw.port}"
    blob = Path(shutil.which("curl") or "/bin/sh")  # a few hundred KiB of real bytes
    r = curl(gw, cert, url + "/up", "--http2", "--data-binary", f"@{blob}")
    assert r.returncode == 0, r.stderr
    assert f'"received": {blob.stat().st_size}' in r.stdout
    r = curl(gw, cert, url + "/download?n=8000000", "--http2", "-o", "/dev/null")
    assert r.stdout.endswith("2 200"), r.stderr
    records = gw.records(at_least=2)
    assert records[-1]["bytes_out"] >= 8_000_000


@needs_nghttp
def test_nghttp_concurrent_streams(tls_app: tuple[Gateway, BackendState]) -> None:
    gw, _ = tls_app
    urls = [f"https://127.0.0.1:{gw.port}/n{i}" for i in range(20)]
    r = subprocess.run(
        ["nghttp", "-ns", "-m", "1", "-H", ":authority: app.localhost", *urls],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    records = gw.records(at_least=20)
    assert sorted(rec["path"] for rec in records) == sorted(f"/n{i}" for i in range(20))
    assert {rec["client_port"] for rec in records} == {records[0]["client_port"]}  # one conn


@needs_nghttp
def test_h2load_multiplexed_requests_all_succeed(tls_app: tuple[Gateway, BackendState]) -> None:
    gw, _ = tls_app
    r = subprocess.run(
        ["h2load", "-n", "400", "-c", "4", "-m", "10", "-H", ":authority: app.localhost",
         f"https://127.0.0.1:{gw.port}/small"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "400 succeeded, 0 failed, 0 errored" in r.stdout, r.stdout
    assert "Application protocol: h2" in r.stdout


def test_sse_over_h2_arrives_event_by_event(
    tls_app: tuple[Gateway, BackendState], cert: CertFiles
) -> None:
    gw, state = tls_app
    with (
        httpx.Client(http2=True, verify=client_context(cert.ca, ["h2"])) as client,
        client.stream("GET", f"https://127.0.0.1:{gw.port}/sse",
                      headers={"Host": "app.localhost"}) as r,
    ):  # fmt: skip
        assert r.http_version == "HTTP/2"
        lines = r.iter_lines()
        assert next(lines) == "data: first"  # before the backend even sent the second
        state.sse_go.set()
        rest = [line for line in lines if line]
    assert rest == ["data: second"]


def test_websocket_over_tls_uses_http11_alpn(tmp_path: Path, cert: CertFiles) -> None:
    from websockets.sync.client import connect

    with ws_echo() as port:
        routes = [{"name": "app.localhost", "target": f"http://127.0.0.1:{port}"}]
        spec = {"tls": {"cert": str(cert.cert), "key": str(cert.key)}}
        with gateway(tmp_path, routes, **spec) as gw:
            ctx = client_context(cert.ca, ["http/1.1"])
            sock = socket.create_connection(("127.0.0.1", gw.port))
            url = f"wss://app.localhost:{gw.port}/chat"
            with connect(url, sock=sock, ssl=ctx, server_hostname="app.localhost") as ws:
                for text in ("hello", "x" * 100_000):
                    ws.send(text)
                    assert ws.recv(timeout=10) == text
            record = gw.records(at_least=1)[-1]
            assert (record["status"], record["protocol"], record["tls"]) == (101, "http/1.1", True)


def test_https_only_redirects_plain_requests(tmp_path: Path, cert: CertFiles) -> None:
    with backend() as (port, _state):
        routes = [{"name": "app.localhost", "target": f"http://127.0.0.1:{port}"}]
        spec = {
            "tls": {"cert": str(cert.cert), "key": str(cert.key)},
            "config": {"https_only": True},
        }
        with gateway(tmp_path, routes, **spec) as gw:
            r = httpx.post(
                f"http://127.0.0.1:{gw.port}/form?a=1",
                headers={"Host": f"app.localhost:{gw.port}"},
                content=b"x=1",
            )
            assert r.status_code == 308
            assert r.headers["location"] == f"https://app.localhost:{gw.port}/form?a=1"
            ctx = client_context(cert.ca, ["h2"])
            with httpx.Client(http2=True, verify=ctx) as client:
                ok = client.get(f"https://127.0.0.1:{gw.port}/x", headers={"Host": "app.localhost"})
            assert ok.status_code == 200
            assert gw.records(at_least=2)[0]["reason"] == "https-only"


def _h2_over_tls(gw: Gateway, cert: CertFiles) -> tuple[ssl.SSLSocket, h2.connection.H2Connection]:
    ctx = client_context(cert.ca, ["h2"])
    raw = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    sock = ctx.wrap_socket(raw, server_hostname="app.localhost")
    assert sock.selected_alpn_protocol() == "h2"
    config = h2.config.H2Configuration(
        client_side=True, header_encoding=None, validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )  # fmt: skip
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def _until_refused(sock: ssl.SSLSocket, conn: h2.connection.H2Connection, sid: int) -> str:
    """Read until the stream is reset, answered or the connection ends; say which."""
    for _ in range(100):
        data = sock.recv(65536)
        if not data:
            return "closed"
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.StreamReset) and event.stream_id == sid:
                return "reset"
            if isinstance(event, h2.events.ConnectionTerminated):
                return "goaway"
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == sid:
                return dict(event.headers)[b":status"].decode()
        sock.sendall(conn.data_to_send())
    return "nothing"


SMUGGLE = {
    "crlf-in-value": [(b"x-a", b"1\r\nx-injected: 1")],
    "transfer-encoding": [(b"transfer-encoding", b"chunked")],
    "uppercase-name": [(b"X-Upper", b"1")],
    "connection-field": [(b"connection", b"close")],
}


@pytest.mark.parametrize("name", sorted(SMUGGLE))
def test_h2_to_h1_smuggling_is_refused_on_the_wire(
    tls_app: tuple[Gateway, BackendState], cert: CertFiles, name: str
) -> None:
    gw, state = tls_app
    sock, conn = _h2_over_tls(gw, cert)
    with sock:
        sid = conn.get_next_available_stream_id()
        headers = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"app.localhost"),
            (b":path", b"/s"),
            *SMUGGLE[name],
        ]
        conn.send_headers(sid, headers, end_stream=True)
        sock.sendall(conn.data_to_send())
        assert _until_refused(sock, conn, sid) in ("reset", "goaway", "400")
    # And a good request afterwards still works: the backend saw only that one.
    with httpx.Client(http2=True, verify=client_context(cert.ca, ["h2"])) as client:
        r = client.get(f"https://127.0.0.1:{gw.port}/after", headers={"Host": "app.localhost"})
    assert r.status_code == 200
    assert state.requests == ["/after"]


def test_content_length_disagreeing_with_data_never_completes_upstream(
    tls_app: tuple[Gateway, BackendState], cert: CertFiles
) -> None:
    gw, state = tls_app
    sock, conn = _h2_over_tls(gw, cert)
    with sock:
        sid = conn.get_next_available_stream_id()
        headers = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"app.localhost"),
                   (b":path", b"/p"), (b"content-length", b"3")]  # fmt: skip
        conn.send_headers(sid, headers)
        conn.send_data(sid, b"abcPOST /smuggled HTTP/1.1\r\nhost: app.localhost\r\n\r\n",
                       end_stream=True)  # fmt: skip
        sock.sendall(conn.data_to_send())
        assert _until_refused(sock, conn, sid) in ("reset", "goaway")
    assert "/smuggled" not in state.requests


def test_garbage_after_a_tls_handshake_byte_closes_quietly(
    tls_app: tuple[Gateway, BackendState],
) -> None:
    gw, _ = tls_app
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01\x00\x05hello-not-tls")
        data = s.recv(4096)  # a TLS alert or nothing, then the close
        while data:
            data = s.recv(4096)
    r = httpx.get(f"http://127.0.0.1:{gw.port}/", headers={"Host": "app.localhost"})
    assert r.status_code == 200  # the gateway is still up


@needs_curl
@pytest.mark.parametrize("flag", ["--http2", "--http1.1"])
def test_local_ca_leaf_per_name_through_the_gateway(tmp_path: Path, flag: str) -> None:
    """homeport.tls.server_context (the daemon's context): its SNI callback issues the leaf
    for the name asked, inside the gateway's memory-BIO TLS, and curl verifies it against
    the CA certificate alone."""
    from homeport.tls import ca_cert_path

    state = tmp_path / "state"
    with backend() as (port, _state):
        routes = [{"name": "shop.localhost", "target": f"http://127.0.0.1:{port}"}]
        with gateway(tmp_path, routes, tls_state_dir=str(state)) as gw:
            url = f"https://shop.localhost:{gw.port}/x"
            argv = ["curl", "-sS", "--max-time", "10", "--cacert", str(ca_cert_path(state)),
                    "--resolve", f"shop.localhost:{gw.port}:127.0.0.1", flag,
                    "-w", "\n%{http_version} %{http_code}", url]  # fmt: skip
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stderr
            assert r.stdout.endswith("2 200" if flag == "--http2" else "1.1 200")


def test_passed_sockets_take_tls_and_plain_alike(cert: CertFiles) -> None:
    """Socket activation (``ProxyServer.adopt``): a passed listener tells TLS from plain
    HTTP by the first byte, as a bound one does."""
    import asyncio

    from tls_support import server_context

    from homeport.gateway.config import ProxyConfig
    from homeport.gateway.server import ProxyServer

    def fetch(port: int, tls: bool) -> bytes:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        ctx = client_context(cert.ca, ["http/1.1"])
        sock = ctx.wrap_socket(raw, server_hostname="app.localhost") if tls else raw
        with sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n")
            out = b""
            while chunk := sock.recv(65536):
                out += chunk
        return out

    async def main() -> tuple[bytes, bytes]:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        server = ProxyServer(ProxyConfig(), tls=server_context(cert.cert, cert.key))
        (_, port), = await server.adopt([listener])  # fmt: skip
        try:
            secure = await asyncio.to_thread(fetch, port, True)
            plain = await asyncio.to_thread(fetch, port, False)
        finally:
            await server.close()
        return secure, plain

    secure, plain = asyncio.run(main())
    assert secure.startswith(b"HTTP/1.1 404 ")  # no routes: homeport's own page, over TLS
    assert plain.startswith(b"HTTP/1.1 404 ")
