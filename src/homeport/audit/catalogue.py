"""The service catalogue, as data: what to send, how to read the answer, what it proves.

Three tables:

- ``PROBES``: the bytes a probe sends (a raw payload, or an HTTP request line). Every probe
  is read-only: a ``PING``, a version query, a protocol handshake that is closed right
  after the server's first answer, an HTTP ``GET``. Port hints say which probe to try first.
- ``SIGNATURES``: a regex over the answer to one probe (``*`` = any probe, for protocols
  where the server talks first) and what a match proves: just *which service* this is
  (``identify``), that it answers *without authentication* (``open``), or that it asks for
  credentials (``protected``).
- ``SERVICES`` (in ``services.py``): per service, how bad an unauthenticated answer is,
  whether it can run code (which makes a web-page attack on it worse), the paths the
  browser checks should use, and the concrete fixes (bind flag / config key).

Adding a service is adding rows here; the probe engine and the rules never change.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Literal

from homeport.audit.severity import Severity

#: raw: send bytes, read one answer; http: one request; dialog: a conversation driven by a
#: sans-IO client named by ``dialog`` (the MySQL login), whose answer is its verdict text.
ProbeKind = Literal["raw", "http", "dialog"]
Verdict = Literal["identify", "open", "protected"]


@dataclass(frozen=True, slots=True)
class Probe:
    id: str
    kind: ProbeKind
    #: raw: the bytes to send (empty = only listen for a greeting); dialog: its argument
    #: (the user name to log in as).
    payload: bytes = b""
    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    #: Ports where this probe goes first (the service's defaults).
    ports: tuple[int, ...] = ()
    #: HTTP only: run it in discovery when this regex matches the ``GET /`` answer (None:
    #: always). ``_NEVER``: only to confirm a service already identified, or on its ports.
    #: Fewer connections per listener is what keeps a 50-listener audit under 3 s.
    when: str | None = None
    #: dialog only: which client drives it (see ``probe.DIALOGS``).
    dialog: str = ""

    def describe(self) -> str:
        if self.kind == "dialog":
            return f"{self.dialog} login as {self.payload.decode()!r} with an empty password"
        if self.kind == "http":
            return f"{self.method} {self.path}"
        return repr(self.payload[:60])[1:] if self.payload else "(connect, wait for greeting)"


@dataclass(frozen=True, slots=True)
class Signature:
    service: str
    #: Probe id whose answer is matched, or ``*`` for any answer (greeting-first protocols).
    probe: str
    #: Regex over the answer: raw bytes as latin-1 text, or ``Response.text()`` for HTTP.
    match: str
    verdict: Verdict = "identify"
    #: What a match proves, in words, for the evidence line; ``{1}`` quotes the match's
    #: group 1 (e.g. why a login could not be checked).
    proves: str = ""
    #: Regex whose group 1 is the version.
    version: str | None = None
    #: For HTTP: the status the answer must have.
    status: int | None = None

    @property
    def pattern(self) -> re.Pattern[str]:
        return _compiled(self.match)


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    label: str
    #: Severity of answering without authentication to anyone on this machine (loopback).
    open_severity: Severity = "medium"
    #: Can a client run code or read everything through it? (makes web-page reach worse)
    powerful: bool = False
    #: How to make it ask for credentials.
    auth_fix: str = ""
    #: How to bind it to loopback only.
    bind_fix: str = "bind it to 127.0.0.1 (and ::1) instead of all interfaces"
    #: Path the browser-risk checks request (a sensitive one where known).
    web_path: str = "/"
    #: Paths where a WebSocket upgrade is tried.
    ws_paths: tuple[str, ...] = ()
    #: A JSON-RPC endpoint that must refuse cross-site ``text/plain`` POSTs.
    jsonrpc_path: str | None = None
    #: Lower number wins when several services match the same listener.
    rank: int = 50
    tags: tuple[str, ...] = field(default=())


def _bson(items: list[tuple[str, object]]) -> bytes:
    """Just enough BSON (bsonspec.org) for the two fixed MongoDB probes."""
    out = b""
    for key, value in items:
        name = key.encode() + b"\x00"
        if isinstance(value, bool):
            out += b"\x08" + name + (b"\x01" if value else b"\x00")
        elif isinstance(value, int):
            out += b"\x10" + name + struct.pack("<i", value)
        else:
            s = str(value).encode() + b"\x00"
            out += b"\x02" + name + struct.pack("<i", len(s)) + s
    return struct.pack("<i", len(out) + 5) + out + b"\x00"


def _mongo_query_ismaster() -> bytes:
    # OP_QUERY (opcode 2004) on admin.$cmd: still accepted for the hello handshake.
    body = struct.pack("<i", 0) + b"admin.$cmd\x00" + struct.pack("<ii", 0, -1)
    body += _bson([("isMaster", 1)])
    return struct.pack("<iiii", 16 + len(body), 0x4850, 0, 2004) + body


def _mongo_msg_listdatabases() -> bytes:
    # OP_MSG (opcode 2013), one kind-0 section. listDatabases is a read.
    doc = _bson([("listDatabases", 1), ("nameOnly", True), ("$db", "admin")])
    body = struct.pack("<I", 0) + b"\x00" + doc
    return struct.pack("<iiii", 16 + len(body), 0x4851, 0, 2013) + body


def _pg_startup(user: str, database: str) -> bytes:
    # StartupMessage, protocol 3.0 (PostgreSQL docs, "Message Formats").
    params = f"user\x00{user}\x00database\x00{database}\x00\x00".encode()
    return struct.pack("!ii", 8 + len(params), 196608) + params


_JSON = (("Accept", "application/json"),)
_NEVER = r"(?!)"
_MCP_PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'

PROBES: tuple[Probe, ...] = (
    Probe("redis-ping", "raw", b"*1\r\n$4\r\nPING\r\n", ports=(6379, 6380, 16379)),
    Probe("memcached-version", "raw", b"version\r\n", ports=(11211,)),
    Probe("postgres-startup", "raw", _pg_startup("postgres", "postgres"), ports=(5432, 5433)),
    Probe("mongodb-ismaster", "raw", _mongo_query_ismaster(), ports=(27017, 27018)),
    Probe("mongodb-listdatabases", "raw", _mongo_msg_listdatabases(), ports=(27017, 27018)),
    Probe("jdwp-handshake", "raw", b"JDWP-Handshake", ports=(5005, 8000, 8787)),
    Probe("greeting", "raw", b"", ports=(21, 22, 25, 3306, 5900)),
    # Only run once a MySQL greeting identified the listener (no ports, never in discovery).
    Probe("mysql-login-root", "dialog", b"root", dialog="mysql"),
    Probe("mysql-login-anonymous", "dialog", b"", dialog="mysql"),
    Probe("http-root", "http", path="/"),
    Probe("http-json-version", "http", path="/json/version", headers=_JSON, ports=(9222, 9229)),
    Probe("http-json-list", "http", path="/json/list", headers=_JSON, when=_NEVER),
    Probe("http-version", "http", path="/version", headers=_JSON, ports=(2375, 2379, 6443, 10250)),
    Probe("http-api", "http", path="/api", headers=_JSON, ports=(8888,)),
    Probe("http-api-kernels", "http", path="/api/kernels", headers=_JSON, when=_NEVER),
    Probe("http-api-tags", "http", path="/api/tags", headers=_JSON, ports=(11434,), when=_NEVER),
    Probe("http-v1-models", "http", path="/v1/models", headers=_JSON, ports=(8000, 1234)),
    Probe(
        "http-mcp-ping",
        "http",
        method="POST",
        path="/mcp",
        body=_MCP_PING,
        headers=(
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ),
    ),
    Probe("http-vite-client", "http", path="/@vite/client", ports=(5173,), when=r"vite"),
    Probe("http-webpack", "http", path="/webpack-dev-server", when=r"webpack|bundle\.js"),
    Probe(
        "http-prometheus",
        "http",
        path="/api/v1/status/buildinfo",
        ports=(9090,),
        when=r"prometheus|\nlocation: /(?:graph|query)",
    ),
    Probe(
        "http-etcd-auth",
        "http",
        method="POST",
        path="/v3/auth/status",
        body=b"{}",
        headers=(("Content-Type", "application/json"),),
        ports=(2379,),
        when=_NEVER,
    ),
    Probe("http-kubelet-pods", "http", path="/pods", ports=(10250, 10255), when=_NEVER),
    Probe("http-k8s-namespaces", "http", path="/api/v1/namespaces", when=_NEVER),
    Probe("http-werkzeug-console", "http", path="/console", when=r"\nserver: werkzeug"),
    Probe(
        "http-notfound",
        "http",
        path="/homeport-audit-404",
        when=r"\nserver: wsgiserver|csrfmiddlewaretoken|django",
    ),
)

_MYSQL_VERSION = r"\x0a(?:5\.5\.5-)?(\d[\d.]*)"
_MYSQL_ROOT_OPEN = "user root logged in over TCP with an empty password"
_MYSQL_ANON_OPEN = "the anonymous user '' logged in over TCP with an empty password"
_MYSQL_REFUSED = "user root with an empty password was refused"
_MYSQL_TLS = "the server refuses logins without TLS (not tried over TLS)"

S = Signature
SIGNATURES: tuple[Signature, ...] = (
    # --- greeting-first protocols: matched on whatever the server sent first
    S("ssh", "*", r"^SSH-\d\.\d+-(\S+)", version=r"^SSH-\d\.\d+-(\S+)"),
    # (MariaDB 10+ greets as "5.5.5-10.x" for old replication clients: skip the prefix.)
    S("mysql", "*", r"^[\s\S]{3}\x00\x0a(\d[^\x00]{0,60}?)-MariaDB", version=_MYSQL_VERSION),
    S("mysql", "*", r"^[\s\S]{3}\x00\x0a(\d[^\x00]{0,60})\x00", version=_MYSQL_VERSION),
    S("vnc", "*", r"^RFB \d{3}\.\d{3}\n", version=r"^RFB (\d{3}\.\d{3})"),
    S("smtp", "*", r"^220[ -][^\r\n]*(?:SMTP|ESMTP)"),
    S("ftp", "*", r"^220[ -][^\r\n]*FTP"),
    # --- MySQL/MariaDB: the mysql-login dialogs answer with mysql.Outcome text. Only root's
    # refusal proves "protected": the anonymous user is merely a second way in.
    S("mysql", "mysql-login-root", r"^accepted: ", "open", _MYSQL_ROOT_OPEN),
    S("mysql", "mysql-login-anonymous", r"^accepted: ", "open", _MYSQL_ANON_OPEN),
    S("mysql", "mysql-login-root", r"^denied: ", "protected", _MYSQL_REFUSED),
    S("mysql", "mysql-login-root", r"^tls-required: ", "protected", _MYSQL_TLS),
    S("mysql", "mysql-login-root", r"^unchecked: (.*)", proves="could not check the login: {1}"),
    # --- Redis (RESP): PING answers +PONG only when no password is needed
    S("redis", "redis-ping", r"^\+PONG\r\n", "open", "PING answered +PONG without AUTH"),
    S("redis", "redis-ping", r"^-NOAUTH", "protected", "PING refused: NOAUTH"),
    S(
        "redis",
        "redis-ping",
        r"^-DENIED Redis is running in protected mode",
        "protected",
        "PING refused by protected-mode",
    ),
    # --- Memcached (text protocol): no auth unless SASL or an auth file (-Y)
    S(
        "memcached",
        "memcached-version",
        r"^VERSION \d",
        "open",
        "version answered without authentication",
        r"^VERSION (\S+)",
    ),
    S(
        "memcached",
        "memcached-version",
        r"^CLIENT_ERROR unauthenticated",
        "protected",
        "version refused: unauthenticated",
    ),
    # --- PostgreSQL: AuthenticationOk (R, code 0) right after the startup = trust auth
    S(
        "postgresql",
        "postgres-startup",
        r"^R\x00\x00\x00\x08\x00\x00\x00\x00",
        "open",
        "startup as user postgres got AuthenticationOk (trust) without a password",
    ),
    S(
        "postgresql",
        "postgres-startup",
        r"^R\x00\x00\x00[\s\S]\x00\x00\x00[\x03\x05\x0a]",
        "protected",
        "startup answered with a password/SCRAM challenge",
    ),
    S(
        "postgresql",
        "postgres-startup",
        r"^E\x00\x00[\s\S]{2}S(?:FATAL|ERROR)",
        "protected",
        "startup refused (pg_hba.conf)",
    ),
    # --- MongoDB
    S(
        "mongodb",
        "mongodb-ismaster",
        r"ismaster[\s\S]*maxWireVersion",
        version=r"maxWireVersion\x00([\s\S])",
    ),
    S(
        "mongodb",
        "mongodb-listdatabases",
        r"databases\x00[\s\S]*totalSize",
        "open",
        "listDatabases answered without authentication",
    ),
    S(
        "mongodb",
        "mongodb-listdatabases",
        r"(?:requires authentication|Unauthorized)",
        "protected",
        "listDatabases refused: authentication required",
    ),
    # --- JDWP: the VM echoes the handshake; every debugger command then works
    S(
        "jdwp",
        "jdwp-handshake",
        r"^JDWP-Handshake",
        "open",
        "JDWP handshake echoed: a debugger can attach and run code",
    ),
    # --- HTTP services
    S(
        "docker",
        "http-version",
        r'"ApiVersion"\s*:\s*"[\d.]+"[\s\S]*"Os"',
        "open",
        "GET /version answered by the Docker Engine API without auth",
        r'"Version"\s*:\s*"([^"]+)"',
        200,
    ),
    S(
        "kubernetes-api",
        "http-version",
        r'"gitVersion"\s*:\s*"v[\d.]+[\s\S]*"platform"',
        version=r'"gitVersion"\s*:\s*"([^"]+)"',
        status=200,
    ),
    S(
        "kubernetes-api",
        "http-k8s-namespaces",
        r'"kind"\s*:\s*"NamespaceList"',
        "open",
        "GET /api/v1/namespaces answered to an anonymous client",
        status=200,
    ),
    S(
        "kubelet",
        "http-kubelet-pods",
        r'"kind"\s*:\s*"PodList"',
        "open",
        "GET /pods answered to an anonymous client",
        status=200,
    ),
    S(
        "etcd",
        "http-version",
        r'"etcdserver"\s*:\s*"[\d.]+"',
        version=r'"etcdserver"\s*:\s*"([^"]+)"',
        status=200,
    ),
    S(
        "etcd",
        "http-etcd-auth",
        r'"enabled"\s*:\s*true',
        "protected",
        "auth is enabled",
        status=200,
    ),
    S(
        "etcd",
        "http-etcd-auth",
        r'^HTTP 200 [\s\S]*"header"\s*:\s*\{[^}]*"cluster_id"(?![\s\S]*"enabled"\s*:\s*true)',
        "open",
        "POST /v3/auth/status: authentication is not enabled",
    ),
    S(
        "elasticsearch",
        "http-root",
        r'"cluster_name"[\s\S]*"tagline"\s*:\s*"You Know, for Search',
        "open",
        "GET / answered with the cluster banner without auth",
        r'"number"\s*:\s*"([^"]+)"',
        200,
    ),
    S(
        "elasticsearch",
        "http-root",
        r'www-authenticate: Basic realm="security"',
        "protected",
        "GET / asks for credentials",
        status=401,
    ),
    S(
        "jupyter",
        "http-api",
        r'^HTTP 200 [\s\S]*\n\n\{\s*"version"\s*:\s*"[\d.]+',
        version=r'"version"\s*:\s*"([^"]+)"',
    ),
    S(
        "jupyter",
        "http-api-kernels",
        r"^HTTP 200 [\s\S]*\n\n\[",
        "open",
        "GET /api/kernels listed kernels without a token",
    ),
    S(
        "jupyter",
        "http-api-kernels",
        r'^HTTP 403 [\s\S]*(?:jupyter|"message")',
        "protected",
        "GET /api/kernels refused without a token",
    ),
    S(
        "node-inspector",
        "http-json-version",
        r'"Browser"\s*:\s*"node\.js/v',
        version=r'"Browser"\s*:\s*"node\.js/(v[^"]+)"',
        status=200,
    ),
    S(
        "node-inspector",
        "http-json-list",
        r'(?=[\s\S]*"type"\s*:\s*"node")[\s\S]*"webSocketDebuggerUrl"\s*:\s*"ws://',
        "open",
        "GET /json/list returned a webSocketDebuggerUrl",
        status=200,
    ),
    S(
        "chrome-devtools",
        "http-json-version",
        r'"Browser"\s*:\s*"(?:Headless)?Chrome/',
        version=r'"Browser"\s*:\s*"((?:Headless)?Chrome/[^"]+)"',
        status=200,
    ),
    S(
        "chrome-devtools",
        "http-json-version",
        r'"Browser"\s*:\s*"(?:Headless)?Chrome/[\s\S]*"webSocketDebuggerUrl"',
        "open",
        "GET /json/version returned the browser's webSocketDebuggerUrl",
        status=200,
    ),
    S("ollama", "http-root", r"^HTTP 200 [\s\S]*\n\nOllama is running"),
    S(
        "ollama",
        "http-api-tags",
        r'^HTTP 200 [\s\S]*\n\n\{\s*"models"\s*:',
        "open",
        "GET /api/tags listed the models without auth",
    ),
    S(
        "openai-compatible",
        "http-v1-models",
        r'"object"\s*:\s*"list"[\s\S]*"data"\s*:',
        "open",
        "GET /v1/models listed the models without an API key",
        status=200,
    ),
    S(
        "openai-compatible",
        "http-v1-models",
        r'"(?:invalid_api_key|authentication_error)"|'
        r"(?i:invalid api key)",
        "protected",
        "GET /v1/models asks for an API key",
        status=401,
    ),
    S(
        "mcp",
        "http-mcp-ping",
        r'"jsonrpc"\s*:\s*"2\.0"[\s\S]*"(?:result|error)"',
        "open",
        "POST /mcp (JSON-RPC ping) answered without a token",
    ),
    S(
        "mcp",
        "http-mcp-ping",
        r"^HTTP 401 [\s\S]*www-authenticate: Bearer",
        "protected",
        "POST /mcp asks for a bearer token",
    ),
    S("vite", "http-vite-client", r"^HTTP 200 [\s\S]*(?:import\.meta\.hot|vite)", status=200),
    S("vite", "http-root", r"/@vite/client", status=200),
    S("webpack-dev-server", "http-webpack", r"webpack-dev-server", status=200),
    S("webpack-dev-server", "http-root", r"webpack-dev-server|__webpack_dev_server__"),
    S(
        "prometheus",
        "http-prometheus",
        r'"status"\s*:\s*"success"[\s\S]*"goVersion"',
        "open",
        "GET /api/v1/status/buildinfo answered without auth",
        r'"version"\s*:\s*"([^"]+)"',
        200,
    ),
    S(
        "werkzeug-debugger",
        "http-werkzeug-console",
        r"^HTTP 200 (?=[\s\S]*(?:werkzeug|__debugger__))[\s\S]*console",
        "open",
        "GET /console served the Werkzeug interactive debugger",
        status=200,
    ),
    S(
        "django-debug",
        "http-notfound",
        r"DEBUG = True",
        "open",
        "a 404 page shows Django's DEBUG = True diagnostics",
    ),
    # --- generic HTTP last: anything that answered HTTP at all
    S("http", "http-root", r"^HTTP \d{3}", version=r"\nserver: ([^\n]+)"),
)
del S


def probe(probe_id: str) -> Probe:
    return _PROBES_BY_ID[probe_id]


def signatures_for(probe_id: str) -> tuple[Signature, ...]:
    return tuple(s for s in SIGNATURES if s.probe in (probe_id, "*"))


_PROBES_BY_ID = {p.id: p for p in PROBES}
_RE_CACHE: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    rx = _RE_CACHE.get(pattern)
    if rx is None:
        rx = _RE_CACHE[pattern] = re.compile(pattern, re.IGNORECASE)
    return rx
