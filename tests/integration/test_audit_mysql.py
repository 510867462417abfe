"""The MySQL/MariaDB login check against a real MariaDB (Debian ``mariadb-server``): one
private server in a temporary datadir, walked through the account setups people really
have — root without a password (``--auth-root-authentication-method=normal``), Debian's
unix_socket root plus an anonymous account, unix_socket alone, a password, TLS required,
an ed25519 root — asserting the exact findings after each. The accounts are changed
through the unix socket with the ``mariadb`` client; the audit only ever talks TCP."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from homeport._record import replace
from homeport.audit import AuditConfig, audit
from homeport.audit.probe import Prober
from homeport.audit.run import AuditReport, _remote_auth
from homeport.inventory import listeners
from homeport.model import Listener
from homeport.ports import free_port, release_port

FIXTURE_GREETING = bytes.fromhex(
    "640000000a352e352e352d31302e31312e31392d4d6172696144422d302b64656231327531000e000000"
    "502b25764534746e00feff080200ff81150000000000001d0000004963357e3f5c322358704c69006d79"
    "73716c5f6e61746976655f70617373776f726400"
)  # recorded from MariaDB 10.11 (tests/fixtures/audit/mysql/mariadb.json, root_open)
PASSWORD = "s3cret-homeport-test"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package mariadb-server; .ci/run installs it)")
    return path


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    sock: Path
    #: The last lines mariadbd wrote (its log goes to stderr), for failure messages.
    log: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    password: str = ""
    reader: threading.Thread | None = None

    def sql(self, statements: str) -> None:
        env = dict(os.environ, MYSQL_PWD=self.password)
        argv = ["mariadb", "--no-defaults", "-S", str(self.sock), "-uroot", "-e", statements]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # mariadbd's clean shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.reader is not None:
            self.reader.join(10)  # it ends at the EOF of the exited server's stderr
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        release_port(self.port)


def _read_log(server: Server) -> None:
    """Drain stderr (a full pipe would stall the server); flag the readiness line."""
    assert server.proc.stderr is not None
    for line in server.proc.stderr:
        server.log = [*server.log[-30:], line]
        if "ready for connections" in line:
            server.ready.set()
    server.ready.set()  # EOF: it exited; the caller sees proc.poll()


def _start(mariadbd: str, base: Path) -> Server:
    """Start mariadbd on a free port, again on another one if that port was taken."""
    for _ in range(3):
        port = free_port()
        argv = [mariadbd, "--no-defaults", f"--datadir={base / 'data'}"]
        argv += [f"--socket={base / 'sock'}", f"--port={port}", "--bind-address=127.0.0.1"]
        argv += [f"--pid-file={base / 'pid'}", "--skip-log-bin", "--innodb-buffer-pool-size=8M"]
        argv += [f"--ssl-cert={base / 'c.pem'}", f"--ssl-key={base / 'k.pem'}"]
        if os.geteuid() == 0:
            argv.append("--user=root")
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        server = Server(proc, port, base / "sock")
        server.reader = threading.Thread(target=_read_log, args=(server,), daemon=True)
        server.reader.start()
        server.ready.wait(60)
        if proc.poll() is None and server.ready.is_set():
            return server
        server.stop()
        if not any("Address already in use" in line for line in server.log):
            raise AssertionError("mariadbd did not start:\n" + "".join(server.log))
    raise AssertionError("mariadbd found its port taken three times")


@pytest.fixture(scope="module")
def mariadb() -> Iterator[Server]:
    mariadbd, install = _tool("mariadbd"), _tool("mariadb-install-db")
    _tool("mariadb")
    base = Path(tempfile.mkdtemp(prefix="hp-mysql-"))  # short: the socket path has a limit
    try:
        subprocess.run(
            [
                install,
                "--no-defaults",
                f"--datadir={base / 'data'}",
                "--auth-root-authentication-method=normal",  # root@localhost, no password
                "--skip-test-db",
                *(["--user=root"] if os.geteuid() == 0 else []),
            ],
            check=True,
            capture_output=True,
            timeout=90,
        )
        # A certificate, so that require_secure_transport can be turned on (step 2).
        openssl = ["openssl", "req", "-x509", "-newkey", "ec", "-nodes", "-days", "1"]
        openssl += ["-pkeyopt", "ec_paramgen_curve:P-256", "-subj", "/CN=localhost"]
        openssl += ["-keyout", str(base / "k.pem"), "-out", str(base / "c.pem")]
        subprocess.run(
            openssl,
            check=True,
            capture_output=True,
            timeout=30,
        )
        server = _start(mariadbd, base)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _audit(port: int) -> AuditReport:
    mine = [x for x in listeners(port=port) if x.proto == "tcp" and x.address == "127.0.0.1"]
    assert len(mine) == 1
    return audit(AuditConfig(port=port, outside=False), listeners=mine)


def _verdict(report: AuditReport) -> tuple[str, str, set[tuple[str, str]]]:
    ident = report.listeners[0].identity
    assert ident is not None
    assert (ident.service, ident.version) == ("mysql", _version(report))
    return ident.auth, ident.proves, {(f.rule, f.severity) for f in report.findings}


def _version(report: AuditReport) -> str | None:
    ident = report.listeners[0].identity
    assert ident is not None
    assert ident.version is not None
    assert ident.version.startswith("10.")  # MariaDB's "5.5.5-" prefix is skipped
    return ident.version


def _as_wildcard(x: Listener) -> Listener:
    sock = replace(x.socket, local_addr="0.0.0.0")
    return replace(x, socket=sock, exposure="all-interfaces")


ROOTS = "'root'@'localhost', 'root'@'127.0.0.1', 'root'@'::1'"


def _alter_roots(server: Server, how: str) -> None:
    server.sql("; ".join(f"ALTER USER {r} {how}" for r in ROOTS.split(", ")))


def test_mariadb_logins(mariadb: Server) -> None:
    # 1. out of the box with --auth-root-authentication-method=normal: root, no password
    report = _audit(mariadb.port)
    auth, proves, found = _verdict(report)
    assert (auth, found) == ("open", {("unauthenticated", "medium")})
    f = report.findings[0]
    assert f.title.endswith("user root logged in over TCP with an empty password")
    assert f.evidence[0].probe.startswith("mysql login as 'root' with an empty password · ")
    assert f.evidence[0].answer.startswith("accepted: OK: user 'root' logged in over TCP")
    assert "ALTER USER 'root'@'localhost' IDENTIFIED BY" in f.fix
    assert "bind-address = 127.0.0.1" in f.fix
    # Bound beyond loopback, the proof is run again from the host's own address (here:
    # loopback standing in for it) as a whole new login, not a replay of stale bytes.
    wide = _as_wildcard(report.listeners[0].listener)
    ident = asyncio.run(
        _remote_auth(Prober(timeout=2.0), wide, report.listeners[0].identity, ["127.0.0.1"])
    )
    assert ident is not None
    assert ident.remote_auth == "open"
    assert ident.remote_evidence is not None
    assert (ident.remote_evidence.outcome or "").startswith("accepted: OK: user 'root'")

    # 2. the same, but the server refuses clients without TLS: MariaDB says 1045
    mariadb.sql("SET GLOBAL require_secure_transport = ON")
    try:
        auth, proves, found = _verdict(_audit(mariadb.port))
        assert (auth, proves, found) == (
            "protected",
            "user root with an empty password was refused",
            set(),
        )
    finally:
        mariadb.sql("SET GLOBAL require_secure_transport = OFF")

    # 3. Debian's root (unix_socket), but an anonymous account without a password
    _alter_roots(mariadb, "IDENTIFIED VIA unix_socket")
    mariadb.sql("CREATE USER ''@'localhost'")
    report = _audit(mariadb.port)
    auth, proves, found = _verdict(report)
    assert (auth, found) == ("open", {("unauthenticated", "medium")})
    assert proves == "the anonymous user '' logged in over TCP with an empty password"
    assert "DROP USER ''@'localhost'" in report.findings[0].fix

    # 4. unix_socket root alone: ERR 1698 over TCP, no finding
    mariadb.sql("DROP USER ''@'localhost'")
    report = _audit(mariadb.port)
    assert _verdict(report) == ("protected", "user root with an empty password was refused", set())
    evidence = report.listeners[0].identity.evidence  # type: ignore[union-attr]
    assert evidence is not None
    assert evidence.outcome is not None
    assert "ERR 1698 (28000)" in evidence.outcome

    # 5. root with a password: ERR 1045, no finding
    _alter_roots(mariadb, f"IDENTIFIED BY '{PASSWORD}'")
    mariadb.password = PASSWORD
    report = _audit(mariadb.port)
    assert _verdict(report)[::2] == ("protected", set())
    assert "ERR 1045 (28000)" in (report.listeners[0].identity.evidence.outcome or "")  # type: ignore[union-attr]

    # 6. root through ed25519: a plugin the check does not speak -> "could not check"
    mariadb.sql("INSTALL SONAME 'auth_ed25519'")
    _alter_roots(mariadb, f"IDENTIFIED VIA ed25519 USING PASSWORD('{PASSWORD}')")
    report = _audit(mariadb.port)
    auth, proves, found = _verdict(report)
    assert (auth, found) == ("unknown", set())
    assert proves.startswith("could not check the login: the server asks user 'root' for")
    assert "client_ed25519" in proves
    assert any("could not check the login" in n for n in report.notes)


def test_a_server_that_greets_then_goes_silent() -> None:
    """No MariaDB needed: a listener that sends a recorded greeting and never answers the
    login is "could not check", within the probe timeout."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        stop = threading.Event()
        held: list[socket.socket] = []

        def serve() -> None:
            srv.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    continue
                conn.sendall(FIXTURE_GREETING)
                held.append(conn)  # kept open and silent until the test ends

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            mine = [x for x in listeners(port=port) if x.proto == "tcp"]
            cfg = AuditConfig(port=port, outside=False, probe_timeout=0.5, web=False)
            report = audit(cfg, listeners=mine)
        finally:
            stop.set()
            t.join(5)
            for conn in held:
                conn.close()
    ident = report.listeners[0].identity
    assert ident is not None
    assert (ident.service, ident.auth) == ("mysql", "unknown")
    assert ident.proves == "could not check the login: no verdict within 0.5s"
    assert report.findings == ()


async def _dialog_against(behaviour: str) -> tuple[str | None, str | None, bytes]:
    """Run the root login dialog against a loopback fake that greets and then ``behaviour``."""
    from homeport.audit.catalogue import probe
    from homeport.audit.probe import Target

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(FIXTURE_GREETING)
        await writer.drain()
        if behaviour == "close":
            writer.close()
            return
        await reader.read(1 << 16)  # the HandshakeResponse41
        writer.write(b"\x03\x00\x00\x02\x00\x00\x00")  # an OK too short to be one
        await writer.drain()
        await reader.read(1 << 16)
        writer.close()

    if behaviour == "refused":
        with socket.socket() as s:  # bound, never listening: connect() is refused
            s.bind(("127.0.0.1", 0))
            ex = await Prober(timeout=2.0).run(
                Target("127.0.0.1", s.getsockname()[1]), probe("mysql-login-root")
            )
        return ex.error, ex.outcome, ex.sent
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        ex = await Prober(timeout=2.0).run(Target("127.0.0.1", port), probe("mysql-login-root"))
    return ex.error, ex.outcome, ex.sent


@pytest.mark.parametrize(
    ("behaviour", "error", "outcome"),
    [
        ("refused", "refused", "unchecked: connection refused"),
        ("close", None, "unchecked: the server closed the connection during the login"),
        (
            "garbled",
            None,
            "unchecked: unexpected handshake: unexpected packet 0x00 during authentication",
        ),
    ],
)
def test_dialog_edges(behaviour: str, error: str | None, outcome: str) -> None:
    got_error, got_outcome, sent = asyncio.run(_dialog_against(behaviour))
    assert (got_error, got_outcome) == (error, outcome)
    assert b"\x01\x00\x00\x00\x01" not in sent  # COM_QUIT only after a real OK


def test_remote_recheck_that_cannot_conclude_claims_nothing() -> None:
    """A remote re-run that times out must not read as "refused from elsewhere" (which
    would lower an open MySQL to "loopback only")."""
    from homeport.audit.identify import Exchange, Identity

    proof = Exchange("mysql-login-root", b"", b"", outcome="accepted: OK: ...")
    ident = Identity("mysql", "MySQL/MariaDB", auth="open", evidence=proof)

    async def go() -> Identity | None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(FIXTURE_GREETING)
            await reader.read(1 << 16)
            await reader.read(1 << 16)  # then nothing, until the client gives up
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            wide = next(x for x in listeners(port=port) if x.proto == "tcp")
            return await _remote_auth(Prober(timeout=0.3), _as_wildcard(wide), ident, ["127.0.0.1"])

    got = asyncio.run(go())
    assert got is not None
    assert got.remote_auth is None
    assert got.remote_evidence is not None
    assert got.remote_evidence.outcome == "unchecked: no verdict within 0.3s"
