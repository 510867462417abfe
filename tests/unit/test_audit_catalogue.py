"""The catalogue is data: every probe/signature/service is consistent, and recorded answers
identify the right service with the right auth verdict."""

from __future__ import annotations

import re
import struct

import pytest

from homeport.audit import catalogue, services
from homeport.audit.identify import Exchange, excerpt, identify


def test_catalogue_is_consistent() -> None:
    probe_ids = {p.id for p in catalogue.PROBES}
    assert len(probe_ids) == len(catalogue.PROBES)
    for sig in catalogue.SIGNATURES:
        assert sig.probe == "*" or sig.probe in probe_ids, sig
        assert sig.service in services.SERVICES, sig
        re.compile(sig.match)
        if sig.verdict != "identify":
            assert sig.proves, f"{sig.service}: say what the match proves"
    for svc in services.SERVICES.values():
        if svc.open_severity != "info":
            assert svc.auth_fix, f"{svc.id} needs a concrete auth fix"


def test_every_probe_is_read_only() -> None:
    for p in catalogue.PROBES:
        if p.kind == "http":
            assert p.method in ("GET", "POST"), p
            if p.method == "POST":  # only JSON-RPC ping and etcd's auth *status*
                assert p.id in ("http-mcp-ping", "http-etcd-auth"), p


def test_dialogs_run_only_to_settle_an_identified_service() -> None:
    """A dialog logs in (MySQL): never a discovery probe, only for a service its
    signatures name, and always one whose client exists."""
    from homeport.audit.probe import DIALOGS

    dialogs = [p for p in catalogue.PROBES if p.kind == "dialog"]
    assert {p.id for p in dialogs} == {"mysql-login-root", "mysql-login-anonymous"}
    for p in dialogs:
        assert p.dialog in DIALOGS, p
        assert p.ports == (), f"{p.id} must not run on port hints"
        owners = {s.service for s in catalogue.SIGNATURES if s.probe == p.id}
        assert owners == {"mysql"}, p


def _ex(probe: str, answer: bytes) -> Exchange:
    return Exchange(probe, catalogue.probe(probe).payload, answer)


PG_TRUST = b"R\x00\x00\x00\x08\x00\x00\x00\x00S\x00\x00\x00\x1aapplication_name\x00\x00"
PG_SCRAM = b"R\x00\x00\x00\x17\x00\x00\x00\x0aSCRAM-SHA-256\x00\x00"
PG_HBA = b"E\x00\x00\x00\x6aSFATAL\x00VFATAL\x00C28000\x00Mno pg_hba.conf entry\x00\x00"
MYSQL = b"J\x00\x00\x00\x0a8.0.36\x00\x08\x00\x00\x00abcdefgh\x00"
MARIADB = b"Y\x00\x00\x00\x0a5.5.5-10.11.6-MariaDB-0+deb12u1\x00\x08\x00\x00\x00"


@pytest.mark.parametrize(
    ("probe", "answer", "service", "auth", "version"),
    [
        ("redis-ping", b"+PONG\r\n", "redis", "open", None),
        ("redis-ping", b"-NOAUTH Authentication required.\r\n", "redis", "protected", None),
        (
            "redis-ping",
            b"-DENIED Redis is running in protected mode because ...\r\n",
            "redis",
            "protected",
            None,
        ),
        ("memcached-version", b"VERSION 1.6.18\r\n", "memcached", "open", "1.6.18"),
        ("memcached-version", b"CLIENT_ERROR unauthenticated\r\n", "memcached", "protected", None),
        ("postgres-startup", PG_TRUST, "postgresql", "open", None),
        ("postgres-startup", PG_SCRAM, "postgresql", "protected", None),
        ("postgres-startup", PG_HBA, "postgresql", "protected", None),
        ("jdwp-handshake", b"JDWP-Handshake", "jdwp", "open", None),
        ("http-root", MYSQL, "mysql", "unknown", "8.0.36"),
        ("http-root", MARIADB, "mysql", "unknown", "10.11.6"),
        ("http-root", b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", "ssh", "unknown", "OpenSSH_9.2p1"),
        ("http-root", b"RFB 003.008\n", "vnc", "unknown", "003.008"),
    ],
)
def test_raw_answers(
    probe: str, answer: bytes, service: str, auth: str, version: str | None
) -> None:
    ident = identify([_ex(probe, answer)])
    assert ident is not None
    assert (ident.service, ident.auth, ident.version) == (service, auth, version)


def _http(body: str, status: str = "200 OK", extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


@pytest.mark.parametrize(
    ("probe", "answer", "service", "auth"),
    [
        (
            "http-version",
            _http('{"Version":"24.0.7","ApiVersion":"1.43","Os":"linux"}'),
            "docker",
            "open",
        ),
        (
            "http-json-version",
            _http('{"Browser": "node.js/v20.11.1"}'),
            "node-inspector",
            "unknown",
        ),
        (
            "http-json-list",
            _http('[{"type": "node", "webSocketDebuggerUrl": "ws://x/1"}]'),
            "node-inspector",
            "open",
        ),
        (
            "http-json-version",
            _http(
                '{"Browser": "HeadlessChrome/120.0", '
                '"webSocketDebuggerUrl": "ws://x/devtools/browser/1"}'
            ),
            "chrome-devtools",
            "open",
        ),
        ("http-api-kernels", _http("[]"), "jupyter", "open"),
        (
            "http-api-kernels",
            _http('{"message": "Forbidden"}', "403 Forbidden"),
            "jupyter",
            "protected",
        ),
        ("http-api-tags", _http('{"models": []}'), "ollama", "open"),
        ("http-v1-models", _http('{"object":"list","data":[]}'), "openai-compatible", "open"),
        ("http-mcp-ping", _http('{"jsonrpc":"2.0","id":1,"result":{}}'), "mcp", "open"),
        (
            "http-mcp-ping",
            _http("", "401 Unauthorized", "WWW-Authenticate: Bearer\r\n"),
            "mcp",
            "protected",
        ),
        (
            "http-root",
            _http(
                '{"cluster_name":"c","version":{"number":"8.11.1"},'
                '"tagline":"You Know, for Search"}'
            ),
            "elasticsearch",
            "open",
        ),
        ("http-etcd-auth", _http('{"header":{"cluster_id":"1"}}'), "etcd", "open"),
        (
            "http-etcd-auth",
            _http('{"header":{"cluster_id":"1"},"enabled":true}'),
            "etcd",
            "protected",
        ),
        (
            "http-werkzeug-console",
            _http("<title>Console // Werkzeug Debugger</title>"),
            "werkzeug-debugger",
            "open",
        ),
        (
            "http-root",
            _http("<html><title>It works</title>", extra="Server: Apache\r\n"),
            "http",
            "unknown",
        ),
    ],
)
def test_http_answers(probe: str, answer: bytes, service: str, auth: str) -> None:
    ident = identify([Exchange(probe, b"GET / HTTP/1.1\r\n\r\n", answer)])
    assert ident is not None
    assert (ident.service, ident.auth) == (service, auth)
    assert ident.http


def test_specific_service_beats_generic_http_and_keeps_title() -> None:
    root = Exchange(
        "http-root",
        b"",
        _http("<title>Jupyter Server</title>", extra="Server: TornadoServer/6.4\r\n"),
    )
    kernels = Exchange("http-api-kernels", b"", _http("[]"))
    ident = identify([root, kernels])
    assert ident is not None
    assert ident.service == "jupyter"
    assert ident.server == "TornadoServer/6.4"
    assert ident.title == "Jupyter Server"
    assert ident.evidence is kernels


def test_nothing_matches_silence_or_strangers() -> None:
    assert identify([Exchange("redis-ping", b"x", b"", "timeout")]) is None
    assert identify([Exchange("redis-ping", b"x", b"\x00\x01garbage")]) is None


def test_mongodb_probes_are_wellformed_wire_messages() -> None:
    for pid, opcode in (("mongodb-ismaster", 2004), ("mongodb-listdatabases", 2013)):
        data = catalogue.probe(pid).payload
        length, _, _, op = struct.unpack("<iiii", data[:16])
        assert (length, op) == (len(data), opcode)


def test_excerpt_keeps_text_and_escapes_bytes() -> None:
    assert excerpt(b"+PONG\r\n") == "+PONG\r\n"
    assert excerpt(b"R\x00\x00\x00\x08") == "R\\x00\\x00\\x00\\x08"
    assert excerpt(b"a" * 400, 10) == "a" * 10 + "…"
