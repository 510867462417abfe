"""The local CA on disk and the gateway's TLS context, over real files, real handshakes on
loopback and ``openssl verify``."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import ssl
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from homeport.errors import EnvironmentProblem
from homeport.tls import ca
from homeport.tls.authority import Authority, utcnow
from homeport.tls.names import LeafSpec, leaf_for
from homeport.tls.server import server_context

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def serial(p: Path) -> int:
    return x509.load_pem_x509_certificate(p.read_bytes()).serial_number


def test_ca_made_on_first_use_with_a_private_key(tmp_path: Path) -> None:
    a = Authority(tmp_path)
    assert not a.exists()
    root = a.root()
    assert a.cert_path == tmp_path / "tls" / "ca.pem"
    assert mode(a.key_path) == 0o600
    assert mode(tmp_path / "tls") == 0o700
    files = a.leaf(leaf_for("api.localhost"))
    assert mode(files.key) == 0o600
    assert mode(files.cert.parent) == 0o700
    # a second Authority (another process) reads the same CA and the same leaf
    b = Authority(tmp_path)
    assert b.root().fingerprint() == root.fingerprint()
    assert serial(b.leaf(leaf_for("v2.api.localhost")).cert) == serial(files.cert)


def test_widened_key_mode_is_narrowed_on_load(tmp_path: Path) -> None:
    Authority(tmp_path).root()
    key = tmp_path / "tls" / "ca-key.pem"
    key.chmod(0o644)
    Authority(tmp_path).root()
    assert mode(key) == 0o600


def test_damaged_ca_is_an_environment_problem_not_a_new_ca(tmp_path: Path) -> None:
    a = Authority(tmp_path)
    a.root()
    a.key_path.write_bytes(ca.make_root(T0).key_pem())  # a key of another root
    with pytest.raises(EnvironmentProblem, match="cannot be used") as got:
        Authority(tmp_path).root()
    assert got.value.hint
    assert "homeport trust" in got.value.hint


def test_leaf_renewed_before_expiry_with_a_controlled_clock(tmp_path: Path) -> None:
    clock = Clock()
    a = Authority(tmp_path, clock)
    first = a.leaf(leaf_for("api.localhost"))
    clock.now = T0 + dt.timedelta(days=19)  # 11 days left: kept
    assert a.leaf(leaf_for("api.localhost")).not_after == first.not_after
    assert Authority(tmp_path, clock).leaf(leaf_for("api.localhost")).not_after == first.not_after
    clock.now = T0 + dt.timedelta(days=21)  # 9 days left: issued again, in memory and on disk
    renewed = a.leaf(leaf_for("api.localhost"))
    assert renewed.not_after == clock.now + ca.LEAF_LIFETIME
    assert Authority(tmp_path, clock).leaf(leaf_for("api.localhost")).not_after == (
        renewed.not_after
    )


def test_leaf_of_a_replaced_root_is_issued_again(tmp_path: Path) -> None:
    a = Authority(tmp_path)
    old = serial(a.leaf(leaf_for("api.localhost")).cert)
    shutil.rmtree(tmp_path / "tls")
    a2 = Authority(tmp_path / "x")
    a2.root()
    (tmp_path / "tls").mkdir()
    for name in ("ca.pem", "ca-key.pem"):
        shutil.copy(tmp_path / "x" / "tls" / name, tmp_path / "tls" / name)
    (tmp_path / "tls" / "leaves").mkdir()
    stale = Authority(tmp_path / "y")
    stale_files = stale.leaf(leaf_for("api.localhost"))
    shutil.copy(stale_files.cert, tmp_path / "tls" / "leaves" / "api.localhost.pem")
    shutil.copy(stale_files.key, tmp_path / "tls" / "leaves" / "api.localhost.key")
    got = Authority(tmp_path).leaf(leaf_for("api.localhost"))
    assert serial(got.cert) not in (old, serial(stale_files.cert))
    issuer = x509.load_pem_x509_certificate(got.cert.read_bytes()).issuer
    assert issuer == a2.root().cert.subject


def openssl_verify(cafile: Path, leaf: Path, host: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-purpose",
            "sslserver",
            "-verify_hostname",
            host,
            "-CAfile",
            str(cafile),
            str(leaf),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_verifies_leaves_and_refuses_names_outside_constraints(tmp_path: Path) -> None:
    a = Authority(tmp_path)
    leaf = a.leaf(leaf_for("v1.shop.localhost"))
    ok = openssl_verify(a.cert_path, leaf.cert, "v1.shop.localhost")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    rogue = ca.build_leaf(a.root(), LeafSpec("example.com", ("example.com",)), utcnow())
    path = tmp_path / "rogue.pem"
    path.write_bytes(rogue.cert_pem())
    bad = openssl_verify(a.cert_path, path, "example.com")
    assert bad.returncode != 0
    assert "permitted subtree violation" in bad.stdout + bad.stderr


# ---------------------------------------------------------------- the server context


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A loopback TLS server on server_context(tmp_path), answering with the ALPN it chose."""
    ctx = server_context(tmp_path)
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(30)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True) as s:
                    s.sendall((s.selected_alpn_protocol() or "none").encode())
            except (OSError, ssl.SSLError):
                conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], tmp_path / "tls" / "ca.pem"
    stop.set()
    srv.shutdown(socket.SHUT_RDWR)  # wakes the accept() in the thread; close() does not
    srv.close()
    t.join(10)


def handshake(port: int, cafile: Path, sni: str | None, alpn: list[str]) -> tuple[str, dict]:  # type: ignore[type-arg]
    c = ssl.create_default_context(cafile=str(cafile))
    c.check_hostname = False  # the SANs are asserted instead, so a mismatch is visible
    c.set_alpn_protocols(alpn)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        c.wrap_socket(raw, server_hostname=sni) as s,
    ):
        assert s.version() in ("TLSv1.2", "TLSv1.3")
        return s.recv(16).decode(), s.getpeercert()


def sans(cert: dict) -> set[str]:  # type: ignore[type-arg]
    return {v for _, v in cert["subjectAltName"]}


def test_sni_gets_its_leaf_and_alpn_offers_h2(tls_server: tuple[int, Path]) -> None:
    port, cafile = tls_server
    proto, cert = handshake(port, cafile, "app.localhost", ["h2", "http/1.1"])
    assert proto == "h2"
    assert sans(cert) == {"app.localhost", "*.app.localhost"}
    proto, cert = handshake(port, cafile, "v1.app.localhost", ["http/1.1"])
    assert proto == "http/1.1"
    assert sans(cert) == {"app.localhost", "*.app.localhost"}


def test_unsignable_or_absent_sni_gets_the_localhost_leaf(tls_server: tuple[int, Path]) -> None:
    port, cafile = tls_server
    for sni in ("example.com", None):
        _, cert = handshake(port, cafile, sni, ["h2"])
        assert sans(cert) == {"localhost", "127.0.0.1", "0:0:0:0:0:0:0:1"}


def test_tls_1_2_client_gets_h2_with_an_aead_cipher(tls_server: tuple[int, Path]) -> None:
    """RFC 9113 §9.2.2: h2 over TLS 1.2 needs ECDHE and an AEAD cipher."""
    port, cafile = tls_server
    c = ssl.create_default_context(cafile=str(cafile))
    c.maximum_version = ssl.TLSVersion.TLSv1_2
    c.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        c.wrap_socket(raw, server_hostname="app.localhost") as s,
    ):
        assert s.version() == "TLSv1.2"
        assert s.recv(16) == b"h2"
        name, _, _ = s.cipher()
        assert name.startswith("ECDHE-ECDSA-")
        assert "GCM" in name or "CHACHA20" in name


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_1_1_is_refused(tls_server: tuple[int, Path]) -> None:
    port, cafile = tls_server
    c = ssl.create_default_context(cafile=str(cafile))
    c.check_hostname = False
    c.set_ciphers("DEFAULT:@SECLEVEL=0")  # this client would speak TLS 1.1; the server must not
    c.maximum_version = ssl.TLSVersion.TLSv1_1
    c.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        pytest.raises(ssl.SSLError),
    ):
        c.wrap_socket(raw, server_hostname="app.localhost")


def _loops() -> list[str]:
    loops = ["asyncio"]
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return loops
    return [*loops, "uvloop"]


@pytest.mark.parametrize("loop_kind", _loops())
def test_server_context_under_an_event_loop(tmp_path: Path, loop_kind: str) -> None:
    """The daemon serves through asyncio (uvloop where present), whose TLS runs on
    SSLObject and memory BIOs: the SNI callback must swap leaves there too."""
    import asyncio

    ctx = server_context(tmp_path)
    cafile = tmp_path / "tls" / "ca.pem"

    async def main() -> tuple[set[str], str | None]:
        async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(b"hi")
            await w.drain()
            w.close()

        server = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=ctx)
        port = server.sockets[0].getsockname()[1]
        client = ssl.create_default_context(cafile=str(cafile))
        client.set_alpn_protocols(["h2", "http/1.1"])
        r, w = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="v2.shop.localhost"
        )
        assert await r.read() == b"hi"
        sslobj = w.get_extra_info("ssl_object")
        names = {v for _, v in sslobj.getpeercert()["subjectAltName"]}
        alpn = sslobj.selected_alpn_protocol()
        w.close()
        server.close()
        await server.wait_closed()
        return names, alpn

    if loop_kind == "uvloop":
        import uvloop

        names, alpn = uvloop.run(main())
    else:
        names, alpn = asyncio.run(main())
    assert names == {"shop.localhost", "*.shop.localhost"}
    assert alpn == "h2"


def test_long_running_context_renews_a_leaf_before_it_expires(tmp_path: Path) -> None:
    """A daemon runs for weeks: the SNI callback itself issues the leaf again when less than
    ten days are left (the clock is the test's; the client does not verify dates here)."""
    clock = Clock(utcnow())
    ctx = server_context(tmp_path, now=clock)

    def served_not_after(sni: str) -> dt.datetime:
        c = ssl.create_default_context()
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
        a, b = socket.socketpair()
        with a, b:
            result: list[Exception] = []

            def server() -> None:
                try:
                    with ctx.wrap_socket(a, server_side=True) as s:
                        s.recv(1)
                except (OSError, ssl.SSLError) as exc:
                    result.append(exc)

            t = threading.Thread(target=server)
            t.start()
            with c.wrap_socket(b, server_hostname=sni) as s:
                der = s.getpeercert(binary_form=True)
                s.sendall(b"x")
            t.join(10)
        assert result == []
        assert der is not None
        return x509.load_der_x509_certificate(der).not_valid_after_utc

    first = served_not_after("api.localhost")
    clock.now += dt.timedelta(days=15)
    assert served_not_after("api.localhost") == first  # 15 days left: kept
    clock.now += dt.timedelta(days=6)
    renewed = served_not_after("api.localhost")
    assert renewed > first
    assert renewed - clock.now > dt.timedelta(days=29)


def test_in_the_roots_last_days_a_leaf_is_not_issued_on_every_use(tmp_path: Path) -> None:
    clock = Clock()
    a = Authority(tmp_path, clock)
    end = a.root().not_after
    clock.now = end - dt.timedelta(days=5)
    first = a.leaf(leaf_for("api.localhost"))
    assert first.not_after == end  # a leaf never outlives its root
    assert serial(a.leaf(leaf_for("api.localhost")).cert) == serial(first.cert)
    assert serial(Authority(tmp_path, clock).leaf(leaf_for("api.localhost")).cert) == serial(
        first.cert
    )


def test_a_leaf_that_cannot_be_issued_falls_back_to_the_default(
    tls_server: tuple[int, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception inside the SNI callback would abort the handshake with no reason given;
    the callback logs it and the client gets the default leaf (a name mismatch it can see)."""
    port, cafile = tls_server

    def broken(*args: object, **kwargs: object) -> ca.Issued:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ca, "make_leaf", broken)
    with caplog.at_level("ERROR", logger="homeport.tls"):
        _, cert = handshake(port, cafile, "new.localhost", ["http/1.1"])
    assert sans(cert) == {"localhost", "127.0.0.1", "0:0:0:0:0:0:0:1"}
    assert any("new.localhost" in r.getMessage() for r in caplog.records)
