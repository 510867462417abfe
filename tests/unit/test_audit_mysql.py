"""The MySQL login client, fed transcripts recorded from a real MariaDB 10.11 (Debian 12,
tests/fixtures/audit/mysql/mariadb.json, made by record.py next to it) and, for MySQL 8
turns MariaDB cannot produce (caching_sha2_password, ER_SECURE_TRANSPORT_REQUIRED),
packets built here by hand from the protocol docs' layouts."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from homeport.audit import mysql
from homeport.audit.findings import Exposure, rules
from homeport.audit.identify import Exchange, identify
from homeport.model import Listener, Process, Socket

FIX = Path(__file__).parent.parent / "fixtures" / "audit" / "mysql" / "mariadb.json"
CASES: dict[str, Any] = json.loads(FIX.read_text())
RECORDED = sorted(k for k in CASES if not k.startswith("_"))
QUIT = bytes.fromhex("0100000001")


def _feed(login: mysql.Login, chunks: list[bytes]) -> list[bytes]:
    out = []
    for chunk in chunks:
        sent = login.receive(chunk)
        if sent:
            out.append(sent)
    return out


def _server(case: str) -> list[bytes]:
    return [bytes.fromhex(h) for h in CASES[case]["server"]]


def _response_fields(packet: bytes) -> tuple[int, str, bytes, str]:
    """Decode our HandshakeResponse41 by its documented layout, independently of the
    module: (capabilities, user, auth-response, plugin)."""
    payload = packet[4:]
    caps = struct.unpack_from("<I", payload)[0]
    assert payload[9:32] == bytes(23)  # reserved filler
    end = payload.index(b"\x00", 32)
    user = payload[32:end].decode()
    n = payload[end + 1]
    auth = payload[end + 2 : end + 2 + n]
    plugin = payload[end + 2 + n :].split(b"\x00")[0].decode()
    return caps, user, auth, plugin


def test_recorded_greeting_parses() -> None:
    pkt, rest = mysql.next_packet(_server("root_open")[0])
    assert pkt is not None
    assert (pkt.seq, rest) == (0, b"")
    hs = mysql.parse_handshake(pkt.payload)
    assert hs.server_version == "5.5.5-10.11.19-MariaDB-0+deb12u1"
    assert (hs.version, hs.mariadb) == ("10.11.19-MariaDB-0+deb12u1", True)
    assert hs.auth_plugin == "mysql_native_password"
    assert len(hs.scramble) == 20
    for flag in (
        mysql.CLIENT_PROTOCOL_41,
        mysql.CLIENT_SECURE_CONNECTION,
        mysql.CLIENT_PLUGIN_AUTH,
        mysql.CLIENT_SSL,  # the recording server had a certificate; we never ask for TLS
    ):
        assert hs.capabilities & flag, hex(flag)
    assert not hs.capabilities & mysql.CLIENT_LONG_PASSWORD  # MariaDB clears "CLIENT_MYSQL"


@pytest.mark.parametrize("case", RECORDED)
def test_recorded_login_replays_exactly(case: str) -> None:
    login = mysql.Login(CASES[case]["user"])
    sent = [s.hex() for s in _feed(login, _server(case))]
    recorded = CASES[case]["client"]
    if "note" in CASES[case]:  # the recorder named caching_sha2_password to be switched
        sha2, native = b"caching_sha2_password".hex(), b"mysql_native_password".hex()
        recorded = [recorded[0].replace(sha2, native), *recorded[1:]]
    assert sent == recorded
    assert login.verdict() == CASES[case]["outcome"]


@pytest.mark.parametrize("case", RECORDED)
def test_byte_at_a_time_gives_the_same_conversation(case: str) -> None:
    whole = b"".join(_server(case))
    login = mysql.Login(CASES[case]["user"])
    sent = b"".join(_feed(login, [whole[i : i + 1] for i in range(len(whole))]))
    assert sent == b"".join(_feed(mysql.Login(CASES[case]["user"]), _server(case)))
    assert login.verdict() == CASES[case]["outcome"]


@pytest.mark.parametrize("case", RECORDED)
def test_never_a_password_never_tls(case: str) -> None:
    login = mysql.Login(CASES[case]["user"])
    sent = _feed(login, _server(case))
    if not sent:
        return  # ERR instead of a greeting: nothing sent at all
    caps, user, auth, plugin = _response_fields(sent[0])
    assert (user, auth) == (CASES[case]["user"], b"")
    assert plugin == "mysql_native_password"
    assert not caps & (mysql.CLIENT_SSL | 0x08)  # no TLS, no CLIENT_CONNECT_WITH_DB
    for later in sent[1:]:
        assert later in (QUIT, b"\x00\x00\x00" + later[3:4])  # COM_QUIT or an empty switch answer


@pytest.mark.parametrize(
    ("case", "kind", "text"),
    [
        ("root_open", "accepted", "user 'root' logged in over TCP"),
        ("root_open_switch_native", "accepted", "(mysql_native_password)"),
        ("anonymous_open", "accepted", "the anonymous user '' logged in"),
        ("root_denied", "denied", "ERR 1045 (28000) Access denied for user 'root'@'localhost'"),
        ("root_unix_socket", "denied", "ERR 1698 (28000)"),
        ("host_not_allowed", "denied", "ERR 1130 Host '127.0.0.2' is not allowed"),
        ("switch_ed25519", "unchecked", "auth plugin 'client_ed25519'"),
        ("anonymous_denied", "unchecked", "auth plugin 'client_ed25519'"),
    ],
)
def test_recorded_outcomes(case: str, kind: str, text: str) -> None:
    login = mysql.Login(CASES[case]["user"])
    sent = _feed(login, _server(case))
    assert login.outcome is not None
    assert login.outcome.kind == kind
    assert text in login.outcome.detail
    assert (bool(sent) and sent[-1] == QUIT) == (kind == "accepted")  # quit only if in


def test_recorded_switch_is_answered_with_an_empty_packet() -> None:
    switch = _server("root_open_switch_native")[1]
    reply = mysql.parse_reply(switch[4:])
    assert isinstance(reply, mysql.AuthSwitch)
    assert reply.plugin == "mysql_native_password"
    assert len(reply.data) == 21  # 20-byte scramble + NUL
    login = mysql.Login("root")
    sent = _feed(login, _server("root_open_switch_native"))
    assert sent[1] == bytes([0, 0, 0, switch[3] + 1])  # AuthSwitchResponse: empty, next seq


# --- MySQL 8 turns, built by hand (HandshakeV10 / AuthMoreData / ERR_Packet layouts) -----


def _frame(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def _mysql8_greeting(plugin: bytes = b"caching_sha2_password", caps: int = 0xDFFFFFFF) -> bytes:
    payload = (
        b"\x0a8.0.36\x00"
        + struct.pack("<I", 11)
        + b"abcdefgh\x00"
        + struct.pack("<H", caps & 0xFFFF)
        + bytes([255])
        + struct.pack("<H", 2)
        + struct.pack("<H", caps >> 16)
        + bytes([21])
        + bytes(10)
        + b"ijklmnopqrst\x00"
        + plugin
        + b"\x00"
    )
    return _frame(0, payload)


def _err(seq: int, code: int, state: bytes, msg: bytes) -> bytes:
    return _frame(seq, b"\xff" + struct.pack("<H", code) + b"#" + state + msg)


OK2 = _frame(2, b"\x00\x00\x00\x02\x00\x00\x00")


def test_mysql8_caching_sha2_empty_password_fast_path() -> None:
    login = mysql.Login("root")
    (resp,) = _feed(login, [_mysql8_greeting()])
    caps, user, auth, plugin = _response_fields(resp)
    assert (user, auth, plugin) == ("root", b"", "caching_sha2_password")
    assert caps & mysql.CLIENT_PLUGIN_AUTH
    assert login.handshake is not None
    assert login.handshake.scramble == b"abcdefghijklmnopqrst"
    assert _feed(login, [_frame(2, b"\x01\x03"), _frame(3, OK2[4:])]) == [QUIT]
    assert login.verdict() == "accepted: OK: user 'root' logged in over TCP (caching_sha2_password)"


@pytest.mark.parametrize(
    ("after_greeting", "kind", "text"),
    [
        (OK2, "accepted", "logged in"),
        (_frame(2, b"\x01\x04"), "unchecked", "wants more authentication data"),
        (
            _err(2, 3159, b"HY000", b"Connections using insecure transport are prohibited"),
            "tls-required",
            "ERR 3159 (HY000)",
        ),
        (_err(2, 1862, b"HY000", b"Your password has expired."), "accepted", "expired"),
        (_err(2, 1045, b"28000", b"Access denied"), "denied", "ERR 1045"),
        (_err(2, 1040, b"08004", b"Too many connections"), "unchecked", "ERR 1040"),
        (_frame(2, b"\xfe"), "unchecked", "mysql_old_password"),
        (_frame(2, b"\xfeauth_gssapi_client\x00xyz"), "unchecked", "auth_gssapi_client"),
        (_frame(2, b"\x42what"), "unchecked", "unexpected handshake: unexpected packet 0x42"),
    ],
)
def test_mysql8_answers(after_greeting: bytes, kind: str, text: str) -> None:
    login = mysql.Login("root")
    _feed(login, [_mysql8_greeting(), after_greeting])
    assert login.outcome is not None
    assert (login.outcome.kind, text in login.outcome.detail) == (kind, True), login.outcome


def test_a_second_switch_is_not_followed() -> None:
    switch = _frame(2, b"\xfemysql_native_password\x00" + bytes(21))
    login = mysql.Login("root")
    sent = _feed(login, [_mysql8_greeting(), switch, _frame(4, switch[4:])])
    assert len(sent) == 2  # the response, one empty switch answer; nothing after
    assert login.verdict() == (
        "unchecked: unexpected handshake: a second AuthSwitchRequest (to mysql_native_password)"
    )


@pytest.mark.parametrize(
    ("server", "text"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "unexpected handshake"),
        (_frame(0, b"\x09" + b"4.0.1\x00" + bytes(20)), "protocol version 9, not HandshakeV10"),
        (_mysql8_greeting(caps=0xFFFF & ~mysql.CLIENT_PROTOCOL_41), "a pre-4.1 server"),
        (_frame(0, b"\x0a8.0.36\x00\x01"), "greeting too short"),
        (b"\xff\xff\xff\x00", "packet during the connection phase"),
        (_frame(0, b"\xff\x10\x04Too many connections"), "ERR 1040 Too many connections"),
    ],
)
def test_unexpected_servers_are_unchecked(server: bytes, text: str) -> None:
    login = mysql.Login("root")
    assert _feed(login, [server]) == []
    assert login.outcome is not None
    assert login.outcome.kind == "unchecked"
    assert text in login.outcome.detail


def test_a_server_that_closes_early() -> None:
    login = mysql.Login("root")
    assert login.closed() == "unchecked: the server closed the connection before its greeting"
    login = mysql.Login("root")
    _feed(login, [_mysql8_greeting()])
    assert login.closed() == "unchecked: the server closed the connection during the login"


def test_old_servers_without_plugin_auth_get_no_plugin_name() -> None:
    caps = 0xFFFF  # 4.1 + secure connection, but no CLIENT_PLUGIN_AUTH (MySQL 5.1)
    login = mysql.Login("root")
    (resp,) = _feed(login, [_mysql8_greeting(caps=caps)])
    got, user, auth, plugin = _response_fields(resp)
    assert (user, auth, plugin) == ("root", b"", "")
    assert not got & mysql.CLIENT_PLUGIN_AUTH


# --- from verdict text to the audit's identity and finding --------------------------------

GREETING = Exchange("greeting", b"", _server("root_open")[0])


def _login(probe: str, outcome: str) -> Exchange:
    return Exchange(probe, b"<response>", b"<server bytes>", outcome=outcome)


def _ident(root: str, anon: str) -> tuple[str, str, str]:
    got = identify(
        [GREETING, _login("mysql-login-root", root), _login("mysql-login-anonymous", anon)]
    )
    assert got is not None
    assert (got.service, got.version) == ("mysql", "10.11.19")
    return got.auth, got.proves, got.evidence.probe if got.evidence else ""


ACCEPTED = "accepted: OK: ..."
DENIED = "denied: user 'root' refused: ERR 1045 (28000) ..."
UNCHECKED = "unchecked: the server asks user 'root' for auth plugin 'client_ed25519', ..."


@pytest.mark.parametrize(
    ("root", "anon", "auth", "proves", "proof"),
    [
        (ACCEPTED, ACCEPTED, "open", "user root logged in", "mysql-login-root"),
        (DENIED, ACCEPTED, "open", "the anonymous user '' logged in", "mysql-login-anonymous"),
        (DENIED, DENIED, "protected", "user root with an empty password was refused", ""),
        (DENIED, UNCHECKED, "protected", "was refused", "mysql-login-root"),
        ("tls-required: ERR 3159", DENIED, "protected", "refuses logins without TLS", ""),
        # root's login could not be checked: the anonymous refusal proves nothing about root
        (UNCHECKED, DENIED, "unknown", "could not check the login: the server asks user", ""),
    ],
)
def test_verdicts(root: str, anon: str, auth: str, proves: str, proof: str) -> None:
    got_auth, got_proves, got_proof = _ident(root, anon)
    assert (got_auth, proves in got_proves) == (auth, True), got_proves
    assert got_proof == (proof or "mysql-login-root")


def test_greeting_alone_proves_nothing() -> None:
    got = identify([GREETING])
    assert got is not None
    assert (got.service, got.auth, got.proves) == ("mysql", "unknown", "")


def _listener(addr: str) -> Listener:
    from homeport.addr import exposure as bind_exposure

    sock = Socket("tcp", 4, addr, 3306, "", 0, "LISTEN", 1, 0, None)
    return Listener(
        sock, bind_exposure(addr), (Process(77, "mariadbd", ("mariadbd",), 0, "mysql"),)
    )


def test_the_finding_reads_like_the_others() -> None:
    ident = identify([GREETING, _login("mysql-login-root", ACCEPTED)])
    loop = Exposure("loopback", "bound to loopback only")
    (f,) = rules(_listener("127.0.0.1"), ident, loop, (), None)
    assert (f.rule, f.severity, f.service) == ("unauthenticated", "medium", "mysql")
    assert f.title == (
        "MySQL/MariaDB answers without authentication: "
        "user root logged in over TCP with an empty password"
    )
    assert f.evidence[0].probe == "mysql login as 'root' with an empty password · <response>"
    assert f.evidence[0].answer == f"{ACCEPTED} · <server bytes>"
    assert "ALTER USER 'root'@'localhost' IDENTIFIED BY" in f.fix
    assert "bind-address = 127.0.0.1" in f.fix
    unverified = Exposure("not-verified", "not verified")
    sevs = {(x.rule, x.severity) for x in rules(_listener("0.0.0.0"), ident, unverified, (), None)}
    assert ("unauthenticated", "critical") in sevs


def test_refused_and_unchecked_give_no_auth_finding() -> None:
    loop = Exposure("loopback", "bound to loopback only")
    for outcome in (DENIED, UNCHECKED):
        ident = identify([GREETING, _login("mysql-login-root", outcome)])
        assert rules(_listener("127.0.0.1"), ident, loop, (), None) == []
