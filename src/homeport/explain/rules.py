"""The explain rule set, as data: how to recognise an error text, and what to say about it.

Three tables, no I/O and no decisions:

- ``RULES``: error-text patterns, most specific first. Each names the tool that prints the
  text, the kind of failure (the errno behind it) and, through named groups ``host``,
  ``name`` and ``port``, where in the text the address is. The first rule that matches wins.
- ``DIAGNOSES``: one template per situation that ``diagnose`` can conclude (summary, detail
  lines, next steps), with ``{placeholders}`` from ``TEMPLATE_FIELDS``.
  The connection-level kinds (reset, connect-denied, unreachable) keep theirs in
  ``conn_templates``, merged in here.
- Per-tool advice: how a client connects to a given family (``CONNECT_HINTS``) and how a
  server binds both loopback families (``BIND_BOTH_HINTS``), keyed by tool or process name.

Adding a tool is adding rows here; ``tests/unit/test_explain_rules.py`` runs every captured
error text in ``tests/fixtures/errors`` through these tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from homeport.explain.conn_templates import CONNECTION_TEMPLATES

Kind = Literal[
    "refused",  # ECONNREFUSED: RST to our SYN, nothing listens on that address
    "in-use",  # EADDRINUSE on bind()/listen()
    "permission",  # EACCES on bind(): privileged port, or a security module
    "not-available",  # EADDRNOTAVAIL: address not on this machine, or no source port left
    "timeout",  # ETIMEDOUT: no answer at all to the SYN
    "not-found",  # the name did not resolve (ENOTFOUND, EAI_NONAME)
    "vm-disconnected",  # a Java debugger session (JDWP over a socket) ended
    "reset",  # ECONNRESET, or a close before any answer: accepted, then dropped
    "connect-denied",  # EACCES/EPERM on connect(): a local policy said no, not the server
    "unreachable",  # EHOSTUNREACH/ENETUNREACH: an ICMP error (on lo: a firewall reject)
]

KINDS: tuple[Kind, ...] = (
    "refused",
    "in-use",
    "permission",
    "not-available",
    "timeout",
    "not-found",
    "vm-disconnected",
    "reset",
    "connect-denied",
    "unreachable",
)

#: What each kind means, in one line, before any live fact.
MEANING: dict[Kind, str] = {
    "refused": "the connection to {where} was refused: the kernel answered the SYN with a"
    " reset, which on loopback means no socket listens on that exact address and port",
    "in-use": "bind() failed with EADDRINUSE: another socket already holds {where}"
    " (or a wildcard address that covers it)",
    "permission": "bind() failed with EACCES: this user may not bind {where}",
    "not-available": "EADDRNOTAVAIL: {where} cannot be used here (the address is not"
    " assigned to any interface), or, on connect(), no free source port was left",
    "timeout": "the connection to {where} timed out: the SYN got no answer at all",
    "not-found": "the name {host} did not resolve to any address",
    "vm-disconnected": "the debugger's JDWP socket connection to {where} closed",
    "reset": "the connection to {where} was dropped by the other end: a TCP reset"
    " (ECONNRESET, 'Connection reset by peer') or a close before any reply ('Empty reply',"
    " 'socket hang up'); something accepted the connection, then let it go",
    "connect-denied": "connect() to {where} failed with EACCES or EPERM: this machine did not"
    " let the program connect, before any server saw it (unlike 'permission', which is"
    " bind()); on Linux a firewall DROP gives TCP a timeout, not this",
    "unreachable": "connect() to {where} failed with EHOSTUNREACH or ENETUNREACH ('No route"
    " to host'): an ICMP error answered, not the server; on loopback that is a firewall"
    " rule that rejects with icmp admin-/host-prohibited (firewalld's default reject)",
}

#: A refusal on a Unix socket path: no TCP, no SYN.
UNIX_REFUSED_MEANING = (
    "connect() to the Unix socket {where} failed: no such file (ENOENT), or a file no server"
    " listens on (ECONNREFUSED)"
)

_HP = r"(?P<host>\[[^\]\s]+\]|[^\s'\"()\[\]]+?):(?P<port>\d{1,5})\b"  # host:port, [v6]:port
_NODE_HP = r"(?P<host>[0-9A-Za-z.:%_-]*):(?P<port>\d{1,5})\b"  # Node prints ::1:3000 unbracketed
_DENIED = r"(?:Permission denied|Operation not permitted)"  # strerror(EACCES), strerror(EPERM)
_UNREACH = r"(?:No route to host|Network is unreachable)"  # EHOSTUNREACH, ENETUNREACH
_PSQL_AT = (
    r"connection to server at \"(?P<name>[^\"]+)\"(?: \((?P<host>[^)]+)\))?, port (?P<port>\d+)"
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One way a tool reports one kind of failure."""

    id: str
    tool: str
    kind: Kind
    pattern: str
    flags: int = 0
    #: The port the tool uses when the text names no port (MariaDB's 3306).
    default_port: int | None = None
    #: The host the tool uses when the text names none (Ollama's client: 127.0.0.1).
    default_host: str | None = None

    def compiled(self) -> re.Pattern[str]:
        return _compile(self.pattern, self.flags)


_CACHE: dict[tuple[str, int], re.Pattern[str]] = {}


def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    key = (pattern, flags)
    if key not in _CACHE:
        _CACHE[key] = re.compile(pattern, flags)
    return _CACHE[key]


_I, _S = re.IGNORECASE, re.DOTALL

#: Connection-level failures (reset, connect-denied, unreachable), ahead of the older rules:
#: several of these texts also say "Couldn't connect" or "Permission denied", which the
#: refused and bind rules below would otherwise claim. Texts captured by capture_conn.sh.
_CONNECTION: tuple[Rule, ...] = (
    # --- Node.js (lib/internal/errors.js) and undici (fetch)
    Rule("node-reset", "node", "reset", r"(?:connect|read|write) ECONNRESET(?: " + _NODE_HP + ")?"),
    Rule("node-epipe", "node", "reset", r"write EPIPE"),
    Rule("node-hang-up", "node", "reset", r"socket hang up"),
    Rule(
        "node-fetch-closed",
        "node",
        "reset",
        r"SocketError: other side closed(?:[\s\S]*?remoteAddress: '(?P<host>[^']*)',"
        r"\s*remotePort: (?P<port>\d+))?",
    ),
    Rule("node-unix-denied", "node", "connect-denied", r"connect (?:EACCES|EPERM) /\S+"),
    Rule("node-connect-denied", "node", "connect-denied", r"connect (?:EACCES|EPERM) " + _NODE_HP),
    Rule(
        "node-unreachable",
        "node",
        "unreachable",
        r"connect (?:EHOSTUNREACH|ENETUNREACH) " + _NODE_HP,
    ),
    # --- curl: CURLE_RECV_ERROR (56), CURLE_SEND_ERROR (55), CURLE_GOT_NOTHING (52); with -v,
    # the connect() errno that its "(7) Couldn't connect to server" line hides (lib/cf-socket.c)
    Rule(
        "curl-reset",
        "curl",
        "reset",
        r"\((?:55|56)\) (?:Recv|Send) failure: (?:Connection reset by peer|Broken pipe)",
    ),
    Rule("curl-empty-reply", "curl", "reset", r"\(52\) Empty reply from server"),
    Rule(
        "curl-verbose-unix-denied",
        "curl",
        "connect-denied",
        r"Immediate connect fail for /\S+?: " + _DENIED,
    ),
    Rule(
        "curl-verbose-denied",
        "curl",
        "connect-denied",
        r"Immediate connect fail for (?P<host>[^\s/]\S*?): " + _DENIED,
    ),
    Rule(
        "curl-verbose-unreachable",
        "curl",
        "unreachable",
        r"connect to (?P<host>\S+) port (?P<port>\d+) failed: " + _UNREACH,
    ),
    # --- Python requests / urllib3, http.client, the socket module
    Rule(
        "requests-reset",
        "python-requests",
        "reset",
        r"Connection aborted\.',\s*(?:ConnectionResetError|RemoteDisconnected|BrokenPipeError)",
    ),
    Rule(
        "requests-connect-denied",
        "python-requests",
        "connect-denied",
        r"host='(?P<host>[^']+)', port=(?P<port>\d+)\).*\[Errno (?:13|1)\] " + _DENIED,
        _S,
    ),
    Rule(
        "requests-unreachable",
        "python-requests",
        "unreachable",
        r"host='(?P<host>[^']+)', port=(?P<port>\d+)\).*\[Errno (?:113|101|65|51)\] " + _UNREACH,
        _S,
    ),
    Rule(
        "httpx-reset",
        "python-httpx",
        "reset",
        r"(?:httpx|httpcore)\.(?:ReadError|WriteError): \[Errno (?:104|54|32)\]",
    ),
    Rule(
        "httpx-disconnected",
        "python-httpx",
        "reset",
        r"RemoteProtocolError: Server disconnected without sending a response",
    ),
    Rule(
        "urllib-remote-disconnected",
        "python-urllib",
        "reset",
        r"RemoteDisconnected: Remote end closed connection without response",
    ),
    Rule(
        "python-reset",
        "python",
        "reset",
        r"ConnectionResetError: \[Errno (?:104|54)\]|\[Errno (?:104|54)\] Connection reset by"
        r" peer|\[WinError 10054\]",
    ),
    # A PermissionError is bind()'s unless the traceback shows connect() raising it.
    Rule(
        "python-connect-denied",
        "python",
        "connect-denied",
        r"(?:\.connect(?:_ex)?\(|create_connection)[\s\S]{0,400}?\[Errno (?:13|1)\] " + _DENIED,
    ),
    Rule("python-eperm", "python", "connect-denied", r"\[Errno 1\] Operation not permitted"),
    Rule(
        "python-unreachable",
        "python",
        "unreachable",
        r"\[Errno (?:113|101|65|51)\] " + _UNREACH + r"|\[WinError 100(?:65|51)\]",
    ),
    # --- libpq (fe-connect.c, fe-misc.c) and redis-cli (hiredis errstr)
    Rule(
        "psql-reset",
        "psql",
        "reset",
        _PSQL_AT + r" failed: (?:server closed the connection unexpectedly"
        r"|Connection reset by peer)",
    ),
    Rule("psql-reset-session", "psql", "reset", r"server closed the connection unexpectedly"),
    Rule("psql-connect-denied", "psql", "connect-denied", _PSQL_AT + r" failed: " + _DENIED),
    Rule(
        "psql-unix-denied",
        "psql",
        "connect-denied",
        r"connection to server on socket \"/[^\"]+\" failed: " + _DENIED,
    ),
    Rule("psql-unreachable", "psql", "unreachable", _PSQL_AT + r" failed: " + _UNREACH),
    Rule(
        "redis-cli-reset",
        "redis-cli",
        "reset",
        r"(?:Could not connect to Redis at " + _HP + r": |Error: )"
        r"(?:Connection reset by peer|Server closed the connection)",
    ),
    Rule(
        "redis-cli-unix-denied",
        "redis-cli",
        "connect-denied",
        r"Could not connect to Redis at /\S+?: " + _DENIED,
    ),
    Rule(
        "redis-cli-connect-denied",
        "redis-cli",
        "connect-denied",
        r"Could not connect to Redis at " + _HP + r": " + _DENIED,
    ),
    Rule(
        "redis-cli-unreachable",
        "redis-cli",
        "unreachable",
        r"Could not connect to Redis at " + _HP + r": " + _UNREACH,
    ),
    # --- Chrome (net/base/net_error_list.h), Java, Go (net.OpError, net/http transport)
    Rule(
        "chrome-reset",
        "chrome",
        "reset",
        r"ERR_CONNECTION_RESET|ERR_EMPTY_RESPONSE|ERR_CONNECTION_CLOSED",
    ),
    Rule("chrome-denied", "chrome", "connect-denied", r"ERR_NETWORK_ACCESS_DENIED"),
    Rule("chrome-unreachable", "chrome", "unreachable", r"ERR_ADDRESS_UNREACHABLE"),
    Rule("java-reset", "java", "reset", r"java\.net\.SocketException: Connection reset"),
    Rule(
        "go-reset",
        "go",
        "reset",
        r"(?:read|write) tcp \S+?->" + _HP + r": (?:read|write): (?:connection reset by peer"
        r"|broken pipe)",
    ),
    Rule("go-closed-idle", "go", "reset", r"http: server closed idle connection"),
    Rule("go-eof", "go", "reset", r"(?:Get|Head|Post|Put|Patch|Delete) \"[^\"]+\": EOF\b"),
    Rule(
        "go-unix-denied",
        "go",
        "connect-denied",
        r"dial unix /\S+: connect: (?:permission denied|operation not permitted)",
    ),
    Rule(
        "go-connect-denied",
        "go",
        "connect-denied",
        r"dial tcp " + _HP + r": connect: (?:permission denied|operation not permitted)",
    ),
    Rule(
        "go-unreachable",
        "go",
        "unreachable",
        r"dial tcp " + _HP + r": connect: (?:no route to host|network is unreachable)",
    ),
)

#: Last-resort texts for the connection-level kinds, tried among the other generic rules.
_CONNECTION_GENERIC: tuple[Rule, ...] = (
    Rule(
        "generic-reset",
        "unknown",
        "reset",
        r"ECONNRESET|connection reset|reset by peer|socket hang up|closed the connection"
        r" unexpectedly|empty reply from server|ECONNABORTED|\[WinError 10053\]",
        _I,
    ),
    Rule(
        "generic-unreachable",
        "unknown",
        "unreachable",
        r"EHOSTUNREACH|ENETUNREACH|no route to host|network is unreachable",
        _I,
    ),
    # EPERM from bind()/listen() (a cgroup BPF bind hook) stays with bind's 'permission'.
    Rule(
        "generic-bind-eperm",
        "unknown",
        "permission",
        r"\b(?:listen|bind)\b[^\n]{0,40}?(?:EPERM|operation not permitted)",
        _I,
    ),
    Rule(
        "generic-connect-denied",
        "unknown",
        "connect-denied",
        r"\bconnect(?:ion)?\b[^\n]{0,80}?(?:EACCES|EPERM|permission denied|operation not"
        r" permitted)|EPERM|operation not permitted",
        _I,
    ),
)

#: The clients of the audit catalogue's servers and everyday tools (issue 13; texts captured
#: by capture_clients.sh). Ahead of the older rules: git prints curl's words, asyncio's bind
#: error is uvicorn's, pymongo and elasticsearch-py wrap a Python or urllib3 error.
_MYSQL_ON = r"Can't connect to (?:MySQL |MariaDB )?server on '[^'\n]{1,300}' "
_CLIENTS: tuple[Rule, ...] = (
    # --- MySQL / MariaDB clients (libmysql / Connector/C: CR_CONN_HOST_ERROR 2003,
    # CR_CONNECTION_ERROR 2002); the errno in parentheses says why. MariaDB's client
    # reports a refused non-blocking connect as EINPROGRESS (115), and prints no port.
    Rule(
        "mysql-refused",
        "mysql",
        "refused",
        _MYSQL_ON + r"\((?:111|115|61|36|10061)\)",
        default_port=3306,
    ),
    Rule(
        "mysql-timeout", "mysql", "timeout", _MYSQL_ON + r"\((?:110|60|10060)\)", default_port=3306
    ),
    Rule(
        "mysql-unreachable",
        "mysql",
        "unreachable",
        _MYSQL_ON + r"\((?:113|101|65|51|10065)\)",
        default_port=3306,
    ),
    # PHP's mysqli and PDO print the client's code alone: HY000/2002 or [2002]
    Rule(
        "mysql-php",
        "mysql",
        "refused",
        r"\(HY000/200[23]\): Connection refused|SQLSTATE\[HY000\] \[200[23]\] Connection refused",
        default_port=3306,
    ),
    Rule(
        "mysql-socket",
        "mysql",
        "refused",
        r"Can't connect to local (?:MySQL |MariaDB )?server through socket '[^'\n]{1,300}'"
        r" \((?:2|111|61)\)",
    ),
    # --- libpq on its Unix socket (fe-connect.c): >= 14, and the older two-line form
    Rule(
        "psql-socket",
        "psql",
        "refused",
        r"connection to server on socket \"/[^\"\n]{1,300}\" failed: (?:No such file or"
        r" directory|Connection refused)"
        r"|accepting\s+connections on Unix domain socket \"/[^\"\n]{1,300}\"",
    ),
    # --- MongoDB: pymongo's server selection wraps the connect error; the Node driver's
    Rule(
        "pymongo-refused",
        "pymongo",
        "refused",
        r"ServerSelectionTimeoutError: [^\n]{0,300}?(?:\[Errno (?:111|61)\]|Connection refused"
        r"|\[WinError 10061\])",
        default_port=27017,
    ),
    Rule(
        "pymongo-timeout",
        "pymongo",
        "timeout",
        r"ServerSelectionTimeoutError: [^\n]{0,300}?timed out",
        default_port=27017,
    ),
    Rule(
        "mongodb-node-refused",
        "mongodb-node",
        "refused",
        r"MongoServerSelectionError: connect ECONNREFUSED " + _NODE_HP,
        default_port=27017,
    ),
    # --- Elasticsearch (elastic-transport), memcached (pymemcache, the server), redis-py
    Rule(
        "elasticsearch-py-refused",
        "elasticsearch-py",
        "refused",
        r"NewConnectionError[^\n]{0,300}?Connection refused[\s\S]{0,600}?"
        r"elastic_transport\.ConnectionError",
        default_port=9200,
    ),
    Rule(
        "pymemcache-refused",
        "pymemcache",
        "refused",
        r"pymemcache[\s\S]{0,2000}?ConnectionRefusedError",
        default_port=11211,
    ),
    Rule(
        "memcached-in-use",
        "memcached",
        "in-use",
        r"failed to listen on (?:one of interface\(s\) (?P<host>[^\s:]+)|TCP port (?P<port>\d+))"
        r"[^\n]{0,40}Address already in use",
    ),
    Rule(
        "redis-py-refused",
        "redis-py",
        "refused",
        r"redis\.exceptions\.ConnectionError: Error (?:111|61|10061) connecting to " + _HP,
        default_port=6379,
    ),
    # --- LLM servers: Ollama's Python client names no address (its default is 11434);
    # OpenAI-compatible clients (openai, via httpx) name none at all.
    Rule(
        "ollama-py-refused",
        "ollama",
        "refused",
        r"Failed to connect to Ollama\.",
        default_port=11434,
        default_host="127.0.0.1",
    ),
    Rule("openai-refused", "openai", "refused", r"openai\.APIConnectionError: Connection error"),
    # --- Jupyter Server (serverapp.py) with port_retries=0; with retries it moves up instead
    Rule(
        "jupyter-in-use",
        "jupyter",
        "in-use",
        r"the Jupyter server could not be started because port (?P<port>\d+) is not available",
    ),
    # --- Docker: the CLI names DOCKER_HOST; the SDK names only the errno
    Rule(
        "docker-daemon",
        "docker",
        "refused",
        r"Cannot connect to the Docker daemon at (?:tcp://" + _HP + r"|unix://)",
    ),
    Rule(
        "docker-py-missing",
        "docker-py",
        "refused",
        r"DockerException: Error while fetching server API version: [^\n]{0,80}?"
        r"(?:FileNotFoundError|ConnectionRefusedError)",
    ),
    # --- ssh, wget, socat, git, Java, asyncio
    Rule(
        "ssh-refused",
        "ssh",
        "refused",
        r"ssh: connect to host (?P<host>\S+) port (?P<port>\d+): Connection refused",
    ),
    Rule(
        "ssh-timeout",
        "ssh",
        "timeout",
        r"ssh: connect to host (?P<host>\S+) port (?P<port>\d+):"
        r" (?:Connection|Operation) timed out",
    ),
    Rule(
        "ssh-unreachable",
        "ssh",
        "unreachable",
        r"ssh: connect to host (?P<host>\S+) port (?P<port>\d+): " + _UNREACH,
    ),
    Rule(
        "wget-refused", "wget", "refused", r"Connecting to [^\n]{1,600}?failed: Connection refused"
    ),
    Rule(
        "socat-refused",
        "socat",
        "refused",
        r"socat\[\d+\] E connect\(\d+, AF=\d+ [^\n]{1,80}?\): Connection refused",
    ),
    Rule(
        "socat-in-use",
        "socat",
        "in-use",
        r"socat\[\d+\] E bind\(\d+, \{AF=\d+ [^\n]{1,80}?\}, \d+\): Address already in use",
    ),
    Rule(
        "git-refused",
        "git",
        "refused",
        r"fatal: unable to access '[^'\n]{1,500}': Failed to connect to (?P<host>\S+) port"
        r" (?P<port>\d+)(?: after \d+ ms)?: (?:Couldn't connect to server|Connection refused)",
    ),
    Rule(
        "git-timeout",
        "git",
        "timeout",
        r"fatal: unable to access '[^'\n]{1,500}': Failed to connect to (?P<host>\S+) port"
        r" (?P<port>\d+)(?: after \d+ ms)?: (?:Timeout was reached|Connection timed out)",
    ),
    Rule("java-connect-bare", "java", "refused", r"java\.net\.ConnectException\s*$", re.M),
    Rule("java-bind-in-use", "java", "in-use", r"java\.net\.BindException: Address already in use"),
    Rule(
        "asyncio-refused",
        "python-asyncio",
        "refused",
        r"\[Errno (?:111|61|10061)\] Connect call failed|\[WinError 1225\]",
    ),
    Rule(
        "asyncio-in-use",
        "python-asyncio",
        "in-use",
        r"^OSError: \[Errno \d+\] error while attempting to bind on address"
        r" \('(?P<host>[^']*)', (?P<port>\d+)[^)]*\): address already in use",
        re.M,
    ),
)

RULES: tuple[Rule, ...] = (
    *_CONNECTION,
    *_CLIENTS,
    # --- Node.js: `Error: <syscall> <CODE>[: <strerror>] <address>:<port>` (lib/internal/errors.js)
    Rule("node-connect-refused", "node", "refused", r"connect ECONNREFUSED " + _NODE_HP),
    Rule("node-connect-timeout", "node", "timeout", r"connect ETIMEDOUT " + _NODE_HP),
    Rule("node-listen-in-use", "node", "in-use", r"listen EADDRINUSE: [^\n]*? " + _NODE_HP),
    Rule("node-listen-eacces", "node", "permission", r"listen EACCES: [^\n]*? " + _NODE_HP),
    Rule(
        "node-listen-eaddrnotavail",
        "node",
        "not-available",
        r"listen EADDRNOTAVAIL: [^\n]*? " + _NODE_HP,
    ),
    Rule(
        "node-enotfound",
        "node",
        "not-found",
        r"getaddrinfo (?:ENOTFOUND|EAI_AGAIN) (?P<host>[^\s'\"]+)",
    ),
    # --- vite (--strictPort) and uvicorn
    Rule("vite-in-use", "vite", "in-use", r"Port (?P<port>\d{1,5}) is already in use"),
    Rule(
        "uvicorn-in-use",
        "uvicorn",
        "in-use",
        r"error while attempting to bind on address \('(?P<host>[^']*)', (?P<port>\d+)[^)]*\):"
        r" (?:\[Errno \d+\] )?address already in use",
        _I,
    ),
    Rule(
        "uvicorn-eacces",
        "uvicorn",
        "permission",
        r"error while attempting to bind on address \('(?P<host>[^']*)', (?P<port>\d+)[^)]*\):"
        r" (?:\[Errno \d+\] )?permission denied",
        _I,
    ),
    # --- curl: lib/connect.c "Failed to connect to %s port %u after %ld ms: %s"
    Rule(
        "curl-refused",
        "curl",
        "refused",
        r"Failed to connect to (?P<host>\S+) port (?P<port>\d+)(?: after \d+ ms)?:"
        r" (?:Couldn't connect to server|Connection refused)",
    ),
    Rule(
        "curl-timeout",
        "curl",
        "timeout",
        r"Failed to connect to (?P<host>\S+) port (?P<port>\d+)(?: after \d+ ms)?:"
        r" (?:Timeout was reached|Connection timed out)",
    ),
    Rule("curl-resolve", "curl", "not-found", r"Could not resolve host: (?P<host>[^\s;]+)"),
    # --- Python requests / urllib3
    Rule(
        "requests-not-found",
        "python-requests",
        "not-found",
        r"host='(?P<host>[^']+)', port=(?P<port>\d+)\).*(?:NameResolutionError|Failed to resolve"
        r"|Name or service not known|nodename nor servname|getaddrinfo failed)",
        _S,
    ),
    Rule(
        "requests-timeout",
        "python-requests",
        "timeout",
        r"host='(?P<host>[^']+)', port=(?P<port>\d+)\).*(?:ConnectTimeout|timed out)",
        _S,
    ),
    Rule(
        "requests-refused",
        "python-requests",
        "refused",
        r"host='(?P<host>[^']+)', port=(?P<port>\d+)\).*(?:Connection refused|Errno 111|10061)",
        _S,
    ),
    Rule("urllib-refused", "python-urllib", "refused", r"<urlopen error \[Errno (?:111|61)\]"),
    # --- PostgreSQL libpq: >= 14 and the older two-line form (fe-connect.c)
    Rule(
        "psql-refused",
        "psql",
        "refused",
        r"connection to server at \"(?P<name>[^\"]+)\"(?: \((?P<host>[^)]+)\))?,"
        r" port (?P<port>\d+) failed: Connection refused",
    ),
    Rule(
        "psql-refused-old",
        "psql",
        "refused",
        r"Is the server running on host \"(?P<name>[^\"]+)\"(?: \((?P<host>[^)]+)\))?"
        r" and accepting\s+TCP/IP connections on port (?P<port>\d+)",
    ),
    Rule(
        "psql-timeout",
        "psql",
        "timeout",
        r"connection to server at \"(?P<name>[^\"]+)\"(?: \((?P<host>[^)]+)\))?,"
        r" port (?P<port>\d+) failed: (?:Connection timed out|timeout expired)",
    ),
    # --- redis-cli (redis-cli.c cliConnect)
    Rule(
        "redis-cli-refused",
        "redis-cli",
        "refused",
        r"Could not connect to Redis at " + _HP + r": Connection refused",
    ),
    # --- Java: IntelliJ's debugger console, jdb, any JVM client
    Rule(
        "intellij-disconnected",
        "intellij",
        "vm-disconnected",
        r"Disconnected from the target VM, address: '" + _HP + r"', transport: 'socket'",
    ),
    Rule(
        "intellij-unable-to-open",
        "intellij",
        "refused",
        r"Unable to open debugger port \(" + _HP + r"\): java\.net\.ConnectException",
    ),
    Rule(
        "jdb-refused",
        "jdb",
        "refused",
        r"ConnectException: Connection refused.*Unable to attach to target VM",
        _S,
    ),
    Rule("java-refused", "java", "refused", r"java\.net\.ConnectException:? \"?Connection refused"),
    # --- Chrome / Chromium (net/base/net_error_list.h) and its error page
    Rule(
        "chrome-page-refused",
        "chrome",
        "refused",
        r"(?<![\w.-])(?P<host>[\w.-]{1,253}) refused to connect\.",
    ),
    Rule("chrome-refused", "chrome", "refused", r"ERR_CONNECTION_REFUSED"),
    Rule("chrome-timeout", "chrome", "timeout", r"ERR_CONNECTION_TIMED_OUT"),
    Rule("chrome-not-found", "chrome", "not-found", r"ERR_NAME_NOT_RESOLVED"),
    # --- Docker Engine port publishing
    Rule(
        "docker-allocated",
        "docker",
        "in-use",
        r"Bind for " + _HP + r" failed: port is already allocated",
    ),
    # --- Go net.OpError: "dial tcp ADDR: connect: ..." / "listen tcp ADDR: bind: ..."
    Rule("go-refused", "go", "refused", r"dial tcp " + _HP + r": connect: connection refused"),
    Rule(
        "go-timeout",
        "go",
        "timeout",
        r"dial tcp " + _HP + r": (?:i/o timeout|connect: connection timed out)",
    ),
    Rule(
        "go-in-use",
        "go",
        "in-use",
        r"listen tcp[46]? " + _NODE_HP + r": bind: address already in use",
    ),
    Rule(
        "go-eacces",
        "go",
        "permission",
        r"listen tcp[46]? " + _NODE_HP + r": bind: permission denied",
    ),
    Rule(
        "go-not-available",
        "go",
        "not-available",
        r"listen tcp[46]? " + _NODE_HP + r": bind: cannot assign requested address",
    ),
    Rule("go-not-found", "go", "not-found", r"lookup (?P<host>[^\s:]+)(?: on \S+)?: no such host"),
    # --- CPython OSError texts (Linux errno numbers first, then macOS and Windows)
    Rule(
        "python-refused",
        "python",
        "refused",
        r"\[Errno (?:111|61)\] Connection refused|\[WinError 10061\]",
    ),
    Rule(
        "python-in-use",
        "python",
        "in-use",
        r"\[Errno (?:98|48)\] Address already in use|\[WinError 10048\]",
    ),
    Rule(
        "python-eacces",
        "python",
        "permission",
        r"PermissionError: \[Errno 13\] Permission denied|\[WinError 10013\]",
    ),
    Rule(
        "python-not-available",
        "python",
        "not-available",
        r"\[Errno (?:99|49)\] (?:Cannot assign requested address|Can't assign requested address)"
        r"|\[WinError 10049\]",
    ),
    Rule(
        "python-timeout",
        "python",
        "timeout",
        r"\[Errno (?:110|60)\] (?:Connection|Operation) timed out|TimeoutError: timed out"
        r"|\[WinError 10060\]",
    ),
    Rule(
        "python-not-found",
        "python",
        "not-found",
        r"\[Errno -[235]\] (?:Name or service not known|Temporary failure in name resolution"
        r"|No address associated with hostname)|\[Errno 8\] nodename nor servname",
    ),
    # --- Last resort: the errno names and strerror texts any tool may print
    Rule(
        "generic-refused",
        "unknown",
        "refused",
        r"ECONNREFUSED|connection refused|refused to connect",
        _I,
    ),
    Rule(
        "generic-in-use",
        "unknown",
        "in-use",
        r"EADDRINUSE|address already in use|port is already (?:in use|allocated)",
        _I,
    ),
    Rule(
        "generic-not-available",
        "unknown",
        "not-available",
        r"EADDRNOTAVAIL|cannot assign requested address|address not available",
        _I,
    ),
    *_CONNECTION_GENERIC,
    # (not ssh's authentication: "Permission denied (publickey,password)" is no socket error)
    Rule(
        "generic-permission",
        "unknown",
        "permission",
        r"EACCES|permission denied(?! \((?:publickey|password|keyboard|gssapi))",
        _I,
    ),
    Rule("generic-timeout", "unknown", "timeout", r"ETIMEDOUT|timed out", _I),
    Rule(
        "generic-not-found",
        "unknown",
        "not-found",
        r"\bENOTFOUND\b|EAI_NONAME|EAI_AGAIN|could not resolve|no such host"
        r"|name or service not known",
        _I,
    ),
)

#: How to say a tool's name in prose.
TOOL_NAMES: dict[str, str] = {
    "node": "Node.js",
    "vite": "Vite",
    "uvicorn": "uvicorn",
    "curl": "curl",
    "python-requests": "Python requests",
    "python-urllib": "Python urllib",
    "python-httpx": "Python httpx",
    "python": "Python",
    "psql": "psql (libpq)",
    "redis-cli": "redis-cli",
    "intellij": "IntelliJ's debugger",
    "jdb": "jdb",
    "java": "a Java client",
    "chrome": "Chrome",
    "docker": "Docker",
    "go": "a Go program",
    "mysql": "the MySQL/MariaDB client",
    "pymongo": "pymongo (MongoDB)",
    "mongodb-node": "the MongoDB Node.js driver",
    "elasticsearch-py": "the Elasticsearch Python client",
    "pymemcache": "pymemcache (memcached)",
    "memcached": "memcached",
    "redis-py": "redis-py",
    "ollama": "the Ollama client",
    "jupyter": "Jupyter Server",
    "openai": "the OpenAI client",
    "docker-py": "the Docker SDK for Python",
    "ssh": "ssh",
    "wget": "wget",
    "socat": "socat",
    "git": "git",
    "python-asyncio": "Python asyncio",
    "unknown": "the program",
}

#: Per client tool: how to make it connect to IPv4 loopback ({port} given).
CONNECT_HINTS: dict[str, str] = {
    "node": "connect to 127.0.0.1 instead of localhost, or start Node with"
    " `--dns-result-order=ipv4first` (or NODE_OPTIONS=--dns-result-order=ipv4first)",
    "curl": "`curl http://127.0.0.1:{port}/` (or `curl -4 ...`)",
    "python-requests": "use http://127.0.0.1:{port}/ in the URL",
    "python-urllib": "use http://127.0.0.1:{port}/ in the URL",
    "python": "connect to ('127.0.0.1', {port})",
    "psql": "`psql -h 127.0.0.1 -p {port}`",
    "redis-cli": "`redis-cli -h 127.0.0.1 -p {port}`",
    "intellij": "set the Remote JVM Debug host to 127.0.0.1",
    "jdb": "`jdb -connect com.sun.jdi.SocketAttach:hostname=127.0.0.1,port={port}`",
    "java": "connect to 127.0.0.1, or run with -Djava.net.preferIPv4Stack=true",
    "chrome": "open http://127.0.0.1:{port}/",
    "go": "dial 127.0.0.1:{port}",
    "mysql": "`mariadb -h 127.0.0.1 -P {port}` (`-h localhost` means the Unix socket, not TCP)",
    "pymongo": "use mongodb://127.0.0.1:{port}/ in the URI",
    "mongodb-node": "use mongodb://127.0.0.1:{port}/ in the URI (Node >= 17 tries ::1 first)",
    "elasticsearch-py": "use http://127.0.0.1:{port} as the host",
    "pymemcache": "connect to ('127.0.0.1', {port})",
    "redis-py": "`redis.Redis(host='127.0.0.1', port={port})`",
    "ollama": "set OLLAMA_HOST=http://127.0.0.1:{port}",
    "openai": "set base_url='http://127.0.0.1:{port}/v1'",
    "docker": "DOCKER_HOST=tcp://127.0.0.1:{port} (or the daemon's unix:// socket)",
    "docker-py": "`docker.DockerClient(base_url='unix:///var/run/docker.sock')`",
    "ssh": "`ssh -4 -p {port} 127.0.0.1`",
    "wget": "`wget -4 http://127.0.0.1:{port}/` (or `--prefer-family=IPv4`)",
    "socat": "`socat - TCP4:127.0.0.1:{port}`",
    "git": "use http://127.0.0.1:{port}/ in the remote URL",
    "python-asyncio": "`asyncio.open_connection('127.0.0.1', {port})`",
    "unknown": "connect to 127.0.0.1:{port} instead of localhost",
}

#: Per server process name: how to listen on both loopback families ({port} given).
BIND_BOTH_HINTS: dict[str, str] = {
    "node": "listen on `::` (dual-stack, IPv4 and IPv6): `server.listen({port}, '::')`;"
    " for loopback only, listen twice: '127.0.0.1' and '::1'",
    "vite": "`vite --host ::1` plus 127.0.0.1, or `server.host: true` in vite.config",
    "python": "`python -m http.server {port} --bind ::` (dual-stack on Linux)",
    "python3": "`python3 -m http.server {port} --bind ::` (dual-stack on Linux)",
    "uvicorn": "`uvicorn app:app --host :: --port {port}`",
    "java": "bind to `::` (dual-stack); for JDWP `address=*:{port}` (all) or run two agents",
    "redis-server": "`bind 127.0.0.1 ::1` in redis.conf",
    "postgres": "`listen_addresses = '127.0.0.1,::1'` in postgresql.conf",
    "nginx": "add `listen [::1]:{port};` beside `listen 127.0.0.1:{port};`",
    "docker-proxy": "publish both: `-p 127.0.0.1:{port}:{port} -p [::1]:{port}:{port}`",
    "_default": "bind the server to `::` (dual-stack) or to both 127.0.0.1 and ::1",
}

#: What an address class means to a developer (``homeport.addr.AddressClass`` keys).
ADDRESS_NOTES: dict[str, str] = {
    "loopback": "loopback: never leaves this machine",
    "unspecified": "the unspecified address: as a bind address it means every interface"
    " of its family; as a destination Linux delivers it to this machine, but browsers block"
    " it, so use 127.0.0.1 or ::1 in URLs",
    "private": "private (RFC 1918): reachable from the local network",
    "link-local": "link-local: reachable from the same network segment only",
    "cgnat": "shared address space 100.64.0.0/10 (carrier-grade NAT, or a Tailscale tailnet)",
    "ula": "IPv6 unique local address (RFC 4193): private network",
    "multicast": "multicast: a group address, not one host",
    "public": "public: routable on the Internet",
    "name": "a host name: what it means depends on how it resolves",
}

DEFAULT_BIND_KEY = "_default"


@dataclass(frozen=True, slots=True)
class Template:
    """What to say about one situation; fields come from ``TEMPLATE_FIELDS``."""

    summary: str
    detail: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()


#: Every placeholder a template may use (tests check each template against this set).
TEMPLATE_FIELDS: frozenset[str] = frozenset(
    {
        "host",  # the address the failing program used, as printed (name or IP)
        "where",  # host:port, bracketed for IPv6 ("port N" without a host)
        "wait",  # what to give `homeport wait`: host:port, or the port alone
        "port",
        "tool",  # display name of the tool that printed the error
        "listening",  # "127.0.0.1:3000 (node, pid 42)" for every listener on the port
        "owners",  # "node (pid 42)" for every owning process
        "connect_hint",  # CONNECT_HINTS for the tool
        "bind_hint",  # BIND_BOTH_HINTS for the owner
        "family",  # "IPv4" or "IPv6" of the address used
        "other_family",
        "resolves",  # "::1, 127.0.0.1" or the resolver's error
        "first",  # the first address the name resolves to
        "start",  # net.ipv4.ip_unprivileged_port_start
        "eph_lo",
        "eph_hi",
        "eph_size",
        "time_wait",
        "alt_port",  # a suggested unprivileged port
        "firewall",  # firewall rules on lo that drop or reject, "; "-joined
        "nearby",  # listeners on ports near the one asked about
        "started",  # when the newest owner of the port started: "42 s ago"
        "bpf",  # cgroup BPF connect hooks, "; "-joined, or why they were not read
        "security",  # security modules enforcing now
        "landlock",  # "Landlock ABI 7 available" or "no Landlock"
        "path",  # the Unix socket path a denied connect() names
        "socket",  # its type, mode, owner and group now
        "close_wait",  # local client connections to the port in CLOSE-WAIT, with owners
        "close_wait_count",
        "rejects",  # firewall reject rules on lo that can match the port
    }
)

DIAGNOSES: dict[str, Template] = {
    # ----- refused
    "refused.nothing": Template(
        "Nothing listens on port {port} here, on any address or family.",
        ("The server is not running, has not finished starting, or listens on another port.",),
        (
            "start the server, and wait for it before connecting: `homeport wait {wait}`",
            "check the server's own log for the port it really chose (dev servers move to the"
            " next free port when theirs is busy): `homeport ls`",
        ),
    ),
    "refused.family": Template(
        "{tool} was refused on {where} ({family}), but port {port} listens on {other_family}"
        " only: {listening}.",
        (
            "A socket bound to one loopback family does not receive the other: 127.0.0.1"
            " is not ::1.",
            "A client given `localhost` tries the addresses in the resolver's order;"
            " here `localhost` resolves to: {resolves}.",
        ),
        (
            "make the server listen on both families: {bind_hint}",
            "or make the client use the family the server listens on: {connect_hint}",
        ),
    ),
    "refused.other-address": Template(
        "Port {port} listens, but not on {host}: {listening}.",
        (
            "A socket bound to one specific address only receives connections to that"
            " address; 127.0.0.1 and 127.0.0.2 are different addresses.",
        ),
        (
            "connect to the address the server listens on, shown above",
            "or bind the server to the address the client uses (or to 0.0.0.0 / :: for all)",
        ),
    ),
    "refused.listening-now": Template(
        "Port {port} listens on {where} now ({listening}): the refusal came while it was down.",
        (
            "A server that restarts (file watchers, crashes, deploys) refuses connections for"
            " the moment its socket is closed.",
        ),
        (
            "retry; in scripts wait for readiness first: `homeport wait {wait}`",
            "if refusals continue while it listens, look for a REJECT rule on lo: `homeport"
            " doctor`",
        ),
    ),
    "refused.partial": Template(
        "{host} resolves to {resolves}; port {port} answers on some of them only: {listening}.",
        (
            "The first address, {first}, gets no answer; clients that try only the first"
            " address, or that report the first failure, fail there.",
        ),
        (
            "make the server listen on both families: {bind_hint}",
            "or connect to the address that answers: {connect_hint}",
        ),
    ),
    "refused.udp-only": Template(
        "Port {port} has only UDP sockets ({listening}); a TCP connection is refused.",
        (),
        ("use the protocol the service speaks, or start its TCP side",),
    ),
    "refused.no-address": Template(
        "The error does not say which address and port were refused.",
        ("Refusal on loopback means no socket listened on that exact address and port.",),
        (
            "run again with the address: `homeport explain '<error>' --at HOST:PORT`",
            "see what listens: `homeport ls`",
        ),
    ),
    "refused.unix-missing": Template(
        "The Unix socket {path} does not exist: the server is not running, or listens on"
        " another path.",
        (
            "A Unix socket is a file the server creates when it starts listening; a client"
            " given a path that no server made gets ENOENT ('No such file or directory').",
        ),
        (
            "start the server (Docker: `sudo systemctl start docker`; MariaDB: `sudo"
            " systemctl start mariadb`), or point the client at the path it really uses",
            "or connect over TCP instead: `homeport ls` shows what listens",
        ),
    ),
    "refused.unix-stale": Template(
        "{path} exists ({socket}), but no server listens on it: a file left behind by a"
        " server that stopped.",
        (
            "connect() on a Unix socket with no listener fails with ECONNREFUSED, like a"
            " closed TCP port.",
        ),
        ("restart the server; it removes and recreates its socket file as it starts",),
    ),
    "refused.unix-listening": Template(
        "A server listens on {path} now ({socket}): the refusal came while it was down,"
        " or its accept queue was full.",
        (),
        ("retry; if it keeps failing, the server is not accepting: check its log",),
    ),
    "refused.unix-unknown": Template(
        "{path}: {socket}; whether a server listens on it could not be read here.",
        (),
        ("check the server is running, and the path the client uses",),
    ),
    # ----- in use
    "in-use.held": Template(
        "Port {port} is held by {owners}: {listening}.",
        ("Only one socket may listen on an address and port (SO_REUSEPORT aside).",),
        (
            "see it in full: `homeport who {port}`",
            "stop it if it is a leftover: `homeport kill {port}`",
            "or run on a free port outside the ephemeral range: `homeport port`",
        ),
    ),
    "in-use.held-unknown": Template(
        "Port {port} is held ({listening}), by a process this user cannot see.",
        ("Without root, other users' sockets show no owner.",),
        ("run `sudo homeport who {port}` to see the owner", "or pick a free port: `homeport port`"),
    ),
    "in-use.time-wait": Template(
        "Nothing listens on port {port} now, but {time_wait} connection(s) on it are in TIME-WAIT.",
        (
            "A server that does not set SO_REUSEADDR cannot bind a port that still has"
            " TIME-WAIT connections (up to 60 s, TCP_TIMEWAIT_LEN in include/net/tcp.h).",
        ),
        (
            "set SO_REUSEADDR before bind() (Python: `allow_reuse_address = True`; Node and"
            " most servers already do)",
            "or wait a minute and start again",
        ),
    ),
    "in-use.gone": Template(
        "Nothing holds port {port} now: whatever held it has exited.",
        (),
        (
            "start the server again",
            "if it happens at every start, another service races for"
            " the port: reserve one with `homeport port`",
        ),
    ),
    "in-use.no-port": Template(
        "The error does not say which port was in use.",
        (),
        (
            "run again with the port: `homeport explain '<error>' --at :PORT`",
            "or ask who holds it: `homeport who PORT`",
        ),
    ),
    # ----- permission
    "permission.privileged": Template(
        "Port {port} is below {start}: binding it needs root or CAP_NET_BIND_SERVICE here.",
        ("net.ipv4.ip_unprivileged_port_start = {start} on this machine.",),
        (
            "use an unprivileged port, e.g. {alt_port}",
            "or grant the binary the capability: `sudo setcap cap_net_bind_service=+ep"
            " $(readlink -f $(which <server>))`",
            "or lower the limit: `sudo sysctl -w net.ipv4.ip_unprivileged_port_start={port}`",
            "or keep the server on {alt_port} and give it a name through homeport's gateway:"
            " `homeport route`",
        ),
    ),
    "permission.unprivileged-port": Template(
        "Port {port} needs no privilege here (the limit is {start}), so something else denied it.",
        (
            "Likely causes: a security module (SELinux: `semanage port -l`; AppArmor), a"
            " container's seccomp profile, or on Windows an excluded port range"
            " (`netsh int ipv4 show excludedportrange protocol=tcp`).",
        ),
        ("try another port to confirm: `homeport port`",),
    ),
    "permission.no-port": Template(
        "The error does not say which port; ports below {start} need privilege here.",
        (),
        ("run again with the port: `homeport explain '<error>' --at :PORT`",),
    ),
    # ----- not available
    "not-available.not-local": Template(
        "{host} is not an address of this machine, so nothing can bind it.",
        ("bind() accepts only addresses assigned to an interface (unless ip_nonlocal_bind=1).",),
        (
            "bind 127.0.0.1 (this machine only) or 0.0.0.0 / :: (every interface)",
            "if the address belongs to a VPN or bridge that comes up later, start the server"
            " after it, or bind the wildcard",
        ),
    ),
    "not-available.ipv6-off": Template(
        "{host} cannot be bound: IPv6 is not available on the loopback interface.",
        (),
        ("enable it: `sudo sysctl -w net.ipv6.conf.lo.disable_ipv6=0`", "or bind 127.0.0.1"),
    ),
    "not-available.bindable-now": Template(
        "{host} can be bound here now.",
        (
            "Either the address appeared after the failing start (DHCP, VPN), or the error"
            " came from connect(): EADDRNOTAVAIL there means no free source port was left in"
            " the ephemeral range {eph_lo}-{eph_hi} ({eph_size} ports; {time_wait} TIME-WAIT"
            " on this port now).",
        ),
        (
            "for a server: start it after the network is up, or bind the wildcard",
            "for a client opening many connections: reuse them (keep-alive, a pool), or widen"
            " net.ipv4.ip_local_port_range",
        ),
    ),
    "not-available.no-address": Template(
        "The error does not say which address.",
        (
            "On bind(): the address is not assigned here. On connect(): no free source port"
            " was left in the ephemeral range {eph_lo}-{eph_hi} ({eph_size} ports).",
        ),
        ("run again with the address: `homeport explain '<error>' --at HOST:PORT`",),
    ),
    # ----- timeout
    "timeout.loopback": Template(
        "A loopback connection to {where} timed out: on loopback the kernel refuses a closed"
        " port at once, so something dropped the packets.",
        ("Firewall rules on lo that drop or reject: {firewall}.",),
        (
            "read the firewall rules for lo: `homeport doctor`",
            "if the server listens but never accepts, its accept queue is full: check it is"
            " not stuck (`homeport who {port}`)",
        ),
    ),
    "timeout.remote": Template(
        "{host} did not answer on port {port}: it is not this machine, and nothing there replied.",
        (),
        (
            "check the host is right and up, and that a firewall lets {port}/tcp in",
            "for a service on this machine, use 127.0.0.1:{port}",
        ),
    ),
    "timeout.no-address": Template(
        "The error does not say which address timed out.",
        (
            "On loopback a closed port is refused at once: a timeout points to a firewall drop"
            " or a remote host.",
        ),
        ("run again with the address: `homeport explain '<error>' --at HOST:PORT`",),
    ),
    # ----- not found
    "not-found.localhost-subdomain": Template(
        "{host} does not resolve outside the browser here: {resolves}.",
        (
            "RFC 6761 §6.3 reserves .localhost for loopback; Chrome, Firefox and Edge resolve"
            " *.localhost themselves, but this system's resolver (glibc files/dns) does not.",
        ),
        (
            "curl: `curl --resolve {host}:{port}:127.0.0.1 http://{host}:{port}/` (curl >= 7.85"
            " resolves *.localhost itself)",
            "add `127.0.0.1 {host}` and `::1 {host}` to /etc/hosts",
            "or install nss-myhostname (`myhostname` in the hosts: line of /etc/nsswitch.conf),"
            " which answers every *.localhost name",
            "browsers need none of this; with homeport's gateway (`homeport up`, `homeport"
            " route`) a browser reaches the service as http://{host}:62893",
        ),
    ),
    "not-found.localhost": Template(
        "`localhost` itself does not resolve here: {resolves}.",
        ("/etc/hosts should map it; without it most tools fail.",),
        ("add to /etc/hosts: `127.0.0.1 localhost` and `::1 localhost`",),
    ),
    "not-found.resolves-now": Template(
        "{host} resolves here now, to {resolves}: the failure came from another resolver"
        " (a container, a VPN's DNS) or was temporary.",
        (),
        ("retry; inside a container, the host's /etc/hosts does not apply",),
    ),
    "not-found.other": Template(
        "{host} does not resolve here: {resolves}.",
        (),
        ("check the spelling and your DNS", "for a service on this machine use 127.0.0.1"),
    ),
    # ----- Java debugger
    "vm-disconnected.gone": Template(
        "The debugged JVM no longer listens on {where}: it exited (the normal end of a debug"
        " run) or was stopped.",
        (),
        (
            "to debug again, start it with"
            " `-agentlib:jdwp=transport=dt_socket,server=y,suspend=n,address=127.0.0.1:{port}`",
            "Java 9+ binds `address={port}` to localhost only; `address=*:{port}` listens on all",
        ),
    ),
    "vm-disconnected.listening": Template(
        "A JVM still listens on {where} ({listening}): the debugger detached, the JVM runs on.",
        (),
        ("attach again; JDWP accepts one debugger at a time",),
    ),
    # ----- notes added beside the main finding when their condition holds (diagnose.NOTES)
    "note.nearby": Template(
        "Ports near {port} listen: {nearby}.",
        (
            "Dev servers move to the next free port when theirs is busy (Vite 5173 -> 5174,"
            " Create React App 3000 -> 3001): the server you want may be there.",
        ),
    ),
    "note.v6-elsewhere": Template(
        "Here `localhost` does not resolve to ::1 ({resolves}), so the client used ::1"
        " itself, or resolved `localhost` elsewhere (a container, WSL, another hosts file).",
    ),
    "note.node-order": Template(
        "Node >= 17 no longer puts IPv4 first: it keeps the resolver's order"
        " (dns.setDefaultResultOrder 'verbatim'), so where ::1 comes first for `localhost`,"
        " it connects to ::1.",
    ),
    "note.docker": Template(
        "Docker publishes port {port} (docker-proxy holds it for a container).",
        (
            "Stop or re-map the container rather than the proxy:"
            " `docker ps --filter publish={port}`, then `docker stop <container>` or publish"
            " another host port (`-p 127.0.0.1:NEW:{port}`).",
        ),
    ),
    "note.ephemeral": Template(
        "Port {port} lies in the ephemeral range {eph_lo}-{eph_hi}: an outgoing connection may"
        " hold it as its source port. Fixed server ports belong outside it (`homeport port`).",
    ),
    # ----- a plain address, no error
    "address.listening": Template(
        "{where} is served now: {listening}.",
        (),
        ("details of the owner: `homeport who {port}`",),
    ),
    "address.family": Template(
        "{where} goes to {first} ({family}) here, but port {port} listens on {other_family}"
        " only: {listening}.",
        (
            "A socket bound to one loopback family does not receive the other, so clients"
            " of {where} are refused.",
        ),
        (
            "make the server listen on both families: {bind_hint}",
            "or use the address it listens on: {connect_hint}",
        ),
    ),
    "address.other-address": Template(
        "Port {port} listens, but not on {host}: {listening}.",
        ("A socket bound to one address only receives connections to that address.",),
        ("use the address the server listens on, or bind it to the one you use",),
    ),
    "address.not-listening": Template(
        "Nothing serves {where} now.",
        (),
        ("start the server, then `homeport wait {wait}`",),
    ),
    # ----- reset, connect-denied, unreachable (conn_templates.py)
    **{sid: Template(*row) for sid, row in CONNECTION_TEMPLATES.items()},
}
