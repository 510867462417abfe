"""Pure: every address an error text names, in every form tools print, and which one failed.

Independent of the rule table, so a client no rule knows still has its address read:

==========  ===============================================  ==============================
form        example                                          printed by
==========  ===============================================  ==============================
url         ``http://[::1]:8080/x``, ``redis://h``            every HTTP client, git, drivers
unix        ``unix:///var/run/docker.sock``, ``/tmp/.s.PGSQL.5432``  Docker, libpq, MySQL
bracket     ``[::1]:5432``, ``[fe80::1%eth0]:80``             curl, Go, Rust, most
tuple       ``('127.0.0.1', 6379)``, ``('::1', 80, 0, 0)``    Python (asyncio, socket)
keyed       ``host='h', port=5432``                           requests/urllib3, libpq conninfo
words       ``host h port 22``, ``to h port 80``, ``at "h" (::1), port 5``  ssh, curl, libpq
wget        ``localhost (localhost)|127.0.0.1|:8080``         wget
grpc        ``ipv4:127.0.0.1:50051``, ``ipv6:[::1]:50051``    gRPC (its resolver's form)
backticks   ```localhost`:`5432```                            Prisma
java-unres. ``localhost/<unresolved>:6379``                   Java (unresolved address)
java        ``localhost/127.0.0.1:8080``                      Java (InetSocketAddress)
v6-bare     ``::1:3000``, ``0:0:0:0:0:0:0:1:8080``            Node, Java
colon       ``127.0.0.1:3000``, ``db.internal:5432``          everyone
on-host     ``on '127.0.0.1' (111)``                          MySQL/MariaDB (host, no port)
port        ``Port 5173 is``, ``port=5432``                   anyone (port, no host)
==========  ===============================================  ==============================

``find_addresses`` returns them in text order, an address inside a longer form's span
dropped (``127.0.0.1:80`` inside ``http://127.0.0.1:80/``). ``choose`` picks the one the
failure is about: for a connect failure the remote end (after ``->``, ``connect``, ``to``;
not a ``Local (...)``, ``laddr`` or ``from`` one), for a bind failure the local one, and
nearer the failure's own words first.

Every pattern is linear: each starts after a delimiter (a look-behind) or at a literal, and
its repeats are bounded, so a long token is read once per start, not once per character.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from homeport.addr import ip, unmap

Role = Literal["remote", "local", "unknown"]

#: Default ports of URL schemes (RFC 3986 names; drivers' registered ports).
SCHEME_PORTS: dict[str, int] = {
    "http": 80,
    "ws": 80,
    "https": 443,
    "wss": 443,
    "ftp": 21,
    "ssh": 22,
    "git": 9418,
    "redis": 6379,
    "rediss": 6379,
    "postgres": 5432,
    "postgresql": 5432,
    "mysql": 3306,
    "mariadb": 3306,
    "mongodb": 27017,
    "amqp": 5672,
    "nats": 4222,
    "memcached": 11211,
    "ldap": 389,
    "tcp": 0,  # tcp://h:p (Docker's DOCKER_HOST): no default
}

#: The last label of ``name:digits`` that is a source file, not a host (``main.go:42``).
_FILE_EXTENSIONS = frozenset(
    [
        "py",
        "js",
        "mjs",
        "cjs",
        "ts",
        "tsx",
        "jsx",
        "go",
        "rs",
        "java",
        "kt",
        "scala",
        "rb",
        "php",
        "c",
        "h",
        "cc",
        "cpp",
        "hpp",
        "cs",
        "swift",
        "ex",
        "exs",
        "erl",
        "lua",
        "pl",
        "sh",
        "log",
        "txt",
        "json",
        "yaml",
        "yml",
        "toml",
        "ini",
        "cfg",
        "conf",
        "xml",
        "html",
        "css",
        "vue",
        "svelte",
        "md",
    ]
)
#: Words that are followed by ``:digits`` without being hosts.
_NOT_HOSTS = frozenset(
    [
        "line",
        "col",
        "column",
        "port",
        "pid",
        "at",
        "in",
        "error",
        "errno",
        "code",
        "status",
        "timeout",
        "after",
        "time",
        "http",
        "https",
        "tcp",
        "udp",
        "unix",
        "file",
    ]
)

_I = re.IGNORECASE
_V4 = r"(?:\d{1,3}\.){3}\d{1,3}"
_V6 = r"[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}(?:%[\w.-]{1,32})?"  # validated in code
_V4MAPPED = r"(?i:::ffff:)(?:\d{1,3}\.){3}\d{1,3}"  # ::ffff:127.0.0.1 (dual-stack sockets)
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_NAME = rf"{_LABEL}(?:\.{_LABEL}){{0,8}}"
_PORT = r"(?P<port>\d{1,5})(?![\w]|[:.]\d)"
_Q = r"(?P<q>['\"]?)"


class LazyPattern:
    """A regex compiled on first use: ``homeport explain`` of a text whose rule names the
    whole address never needs the extractor's patterns, nor the classifier's, and compiling
    them cost ~8 ms of every cold start (bench/README.md, issue 13)."""

    __slots__ = ("_compiled", "flags", "pattern")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern, self.flags = pattern, flags
        self._compiled: re.Pattern[str] | None = None

    def get(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self.pattern, self.flags)
        return self._compiled

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        return self.get().finditer(text)

    def search(self, text: str) -> re.Match[str] | None:
        return self.get().search(text)


#: (form, pattern). Order is priority where spans overlap: earlier forms win.
PATTERNS: tuple[tuple[str, LazyPattern], ...] = (
    (
        "unix",
        LazyPattern(
            r"\b(?i:unix):(?://)?(?P<path>/[^\s'\"<>;,()\[\]]{1,1024})"
            r"|(?<![A-Za-z])[A-Za-z]{1,16}\+(?i:unix)://(?P<enc>%2F[^\s/'\"<>]{1,1024})"
        ),
    ),
    (
        "url",
        LazyPattern(
            r"(?<![\w+.-])(?P<scheme>[A-Za-z][A-Za-z0-9+.-]{0,15})://(?:[^\s/@'\"<>]{0,256}@)?"
            r"(?P<host>\[[0-9a-fA-F:.]{2,45}(?:%[\w.-]{1,32})?\]|[^\s/:?#'\"<>\[\]@,;()|]{1,255})"
            r"(?::(?P<port>\d{1,5}))?(?![\d])"
        ),
    ),
    (
        "path",
        LazyPattern(
            r"(?<![\w.~/:-])(?P<path>/(?:[\w.@+-]{1,255}/){0,24}"
            r"(?:\.s\.PGSQL\.(?P<pgport>\d{1,5})|[\w.@+-]{0,255}\.sock(?:et)?))(?![\w/])"
        ),
    ),
    ("bracket", LazyPattern(rf"\[(?P<host>{_V4MAPPED}|{_V6})\]:{_PORT}")),
    (
        "tuple",
        LazyPattern(
            r"\(\s{0,4}(?P<q>['\"])(?P<host>[^'\"\s]{1,255})(?P=q),\s{0,4}(?P<port>\d{1,5})"
            r"(?:,\s{0,4}\d{1,10},\s{0,4}\d{1,10})?\s{0,4}\)",
        ),
    ),
    (
        "keyed",
        LazyPattern(
            rf"\b(?i:host)\s?[=:]\s?{_Q}(?P<host>[^'\"\s,;()]{{1,255}})(?P=q)\s?[,;]?\s?"
            r"(?i:port)\s?[=:]\s?['\"]?(?P<port>\d{1,5})\b"
        ),
    ),
    (
        "words",
        LazyPattern(
            rf"\b(?i:host|to|at|on|server)\s{{1,3}}{_Q}(?P<host>[^\s'\"(),]{{1,255}}?)(?P=q)"
            r"(?:\s{1,3}\((?P<ip>[0-9a-fA-F.:%]{2,60})\))?,?\s{1,3}(?i:port)\s{1,3}(?P<port>\d{1,5})\b"
        ),
    ),
    ("wget", LazyPattern(r"\|(?P<host>[0-9a-fA-F.:%]{2,60})\|:(?P<port>\d{1,5})\b")),
    ("grpc", LazyPattern(rf"\bipv[46]:(?P<host>{_V4}|\[{_V6}\]):{_PORT}")),
    ("backticks", LazyPattern(r"`(?P<host>[^`\s]{1,255})`:`(?P<port>\d{1,5})`")),
    (
        "java-unresolved",
        LazyPattern(rf"(?<![\w.-])(?P<host>{_NAME})/<unresolved>:{_PORT}"),
    ),
    (
        "java",
        LazyPattern(rf"(?<![\w.-])(?P<name>{_NAME})?/(?P<host>{_V4}|\[{_V6}\]|{_V6}):{_PORT}"),
    ),
    ("v6-bare", LazyPattern(rf"(?<![\w:.%\[/-])(?P<host>{_V4MAPPED}|{_V6}):{_PORT}")),
    ("colon", LazyPattern(rf"(?<![\w.:/@%-])(?P<host>{_V4}|{_NAME}):{_PORT}")),
    ("on-host", LazyPattern(r"\b(?i:on)\s'(?P<host>[^'\s:/]{1,255})'")),
    ("port", LazyPattern(r"\b(?i:port)\b\s?[=:]?\s?(?P<port>\d{1,5})\b")),
)

#: Forms that say only part of an address: kept only where no fuller form covers them.
_PARTIAL = frozenset({"on-host", "port"})


@dataclass(frozen=True, slots=True)
class Address:
    """One address as the text printed it."""

    start: int
    end: int
    form: str
    #: An IP literal (no brackets, scope kept) or a name; None for a bare port or a path.
    host: str | None = None
    port: int | None = None
    #: A Unix socket path.
    path: str | None = None
    #: The name a tool printed beside the IP it tried (Java ``h/ip``, libpq ``"h" (ip)``).
    name: str | None = None


def find_addresses(text: str) -> tuple[Address, ...]:
    """Every address in ``text``, in text order, none inside another's span."""
    found: list[Address] = []
    taken = _Spans()
    for form, pattern in PATTERNS:
        for m in pattern.finditer(text):
            a = _read(form, m)
            if a is None or taken.covers(a.start, a.end):
                continue
            if form in _PARTIAL and taken.overlaps(a.start, a.end):
                continue
            found.append(a)
            taken.add(a.start, a.end)
    return tuple(sorted(found, key=lambda a: a.start))


class _Spans:
    """Accepted spans, sorted by start: a containment or overlap test looks at the
    neighbours only (bisection), so thousands of addresses cost n log n, not n²."""

    __slots__ = ("_ends", "_starts")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def add(self, start: int, end: int) -> None:
        i = bisect.bisect_right(self._starts, start)
        self._starts.insert(i, start)
        self._ends.insert(i, end)

    def _near(self, start: int) -> range:
        i = bisect.bisect_right(self._starts, start)
        return range(max(0, i - 2), min(len(self._starts), i + 1))

    def covers(self, start: int, end: int) -> bool:
        return any(self._starts[j] <= start and end <= self._ends[j] for j in self._near(start))

    def overlaps(self, start: int, end: int) -> bool:
        return any(self._starts[j] < end and start < self._ends[j] for j in self._near(start))


def _read(form: str, m: re.Match[str]) -> Address | None:
    g = m.groupdict()
    start, end = m.span()
    if form == "unix":
        from urllib.parse import unquote

        path = g["path"] or unquote(g["enc"] or "")
        return Address(start, end, form, path=path.rstrip(".")) if path else None
    if form == "path":
        return Address(start, end, form, port=_port(g.get("pgport")), path=g["path"])
    if form == "port":
        port = _port(g["port"])
        return Address(start, end, form, port=port) if port else None
    host = clean_host(g.get("ip") or g.get("host"))
    if host is None or not _plausible(form, host):
        return None
    name = clean_host(g.get("name")) if form == "java" else None
    if form == "words" and g.get("ip"):
        name = clean_host(g["host"])
    port = _port(g.get("port"))
    if form == "url":
        scheme = g["scheme"].lower()
        if port is None:
            port = SCHEME_PORTS.get(scheme) or None
            if port is None and scheme not in SCHEME_PORTS:
                return None  # foo://host with no port: not an address we can look up
    elif form != "on-host" and port is None:
        return None
    return Address(start, end, form, host=host, port=port, name=name if name != host else None)


def _plausible(form: str, host: str) -> bool:
    a = ip(host)
    if form in ("v6-bare", "bracket", "wget", "java"):
        # (these patterns need colons: an IPv4 result here was a v4-mapped ::ffff:a.b.c.d)
        return a is not None
    if a is not None:
        return True
    low = host.lower()
    if form == "colon":
        if not any(c.isalpha() for c in low) or low in _NOT_HOSTS:
            return False
        last = low.rsplit(".", 1)[-1]
        if "." in low and (last in _FILE_EXTENSIONS or last.isdigit()):
            return False
        # A dotted-quad-looking name that is no IP (999.1.1.1) is no host either.
        return not all(part.isdigit() for part in low.split("."))
    if form in ("words", "keyed", "tuple", "backticks", "java-unresolved", "on-host"):
        return _HOSTNAME.get().fullmatch(low) is not None and low not in _NOT_HOSTS
    return low not in _NOT_HOSTS


_HOSTNAME = LazyPattern(_NAME)


def clean_host(h: str | None) -> str | None:
    """Strip quotes and brackets; an IP literal in its canonical form (scope kept)."""
    if not h:
        return None
    h = h.strip().strip("'\"")
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if not h:
        return None
    a = ip(h)
    if a is not None and "%" not in h:
        return str(unmap(a))  # ::ffff:127.0.0.1 is where a v4 listener receives it
    return h


def _port(p: str | None) -> int | None:
    if p is None or not p.isdigit():
        return None
    n = int(p)
    return n if 0 < n < 65536 else None


# ------------------------------------------------------------------ choosing


#: Words before an address that make it the local or the remote end of a connection;
#: the nearest one counts ("from A: dial tcp B": A local, B remote).
_CUES = LazyPattern(
    r"(?P<local>\blocal\b|laddr|\bsrc\b|\bsource\b|\bfrom\b|\bclient\b|sockname)"
    r"|(?P<remote>connect|refused|\bto\b|\bdial\b|remote|\bpeer\b|\bserver\b|\bhost\b"
    r"|\bat\b|->|\bon\b|raddr|\burl\b|fetch|\bget\b|\bpost\b)",
    _I,
)
_BIND_BEFORE = LazyPattern(r"(?:bind|listen|address|serve|start)[^\n]{0,32}$", _I)
#: How much a form says by itself: a full address beats a host or port alone.
_FORM_WEIGHT = {
    "url": 3,
    "unix": 3,
    "path": 2,
    "tuple": 3,
    "keyed": 3,
    "words": 3,
    "wget": 3,
    "grpc": 3,
    "backticks": 3,
    "java-unresolved": 3,
    "java": 3,
    "bracket": 3,
    "v6-bare": 2,
    "colon": 2,
    "on-host": 1,
    "port": 1,
}
_BIND_KINDS = frozenset({"in-use", "permission", "not-available"})


def role(text: str, a: Address) -> Role:
    """Whether ``a`` is the local or the remote end, from the nearest words before it."""
    if text.startswith("->", a.end):
        return "local"
    before = text[max(0, a.start - 40) : a.start]
    last = None
    for m in _CUES.finditer(before):
        last = m
    if last is None:
        return "unknown"
    return "local" if last.group("local") else "remote"


def choose(
    text: str,
    addresses: tuple[Address, ...],
    kind: str | None = None,
    near: int | None = None,
) -> Address | None:
    """The address the failure is about.

    ``kind`` is the failure class (a bind kind wants the bound address, the others the
    remote one); ``near`` the offset of the failure's own words in ``text``: an address on
    that line, or the closest line, wins over one elsewhere in a log."""
    if not addresses:
        return None
    line_of = _line_index(text)
    signal_line = line_of(near) if near is not None else None

    def score(a: Address) -> tuple[int, int, int, int]:
        r = role(text, a)
        if kind in _BIND_KINDS:
            before = text[max(0, a.start - 40) : a.start]
            fit = 2 if _BIND_BEFORE.search(before) else (0 if r == "remote" else 1)
        else:
            fit = {"remote": 2, "unknown": 1, "local": -2}[r]
        if a.host is not None and a.port is None and a.path is None:
            fit -= 1
        distance = abs(line_of(a.start) - signal_line) if signal_line is not None else 0
        return (-min(distance, 50), fit, _FORM_WEIGHT.get(a.form, 1), -a.start)

    return max(addresses, key=score)


def _line_index(text: str) -> _LineOf:
    return _LineOf([m.start() for m in re.finditer("\n", text)])


class _LineOf:
    """Offset -> line number, by bisection over the newline offsets (one pass to build)."""

    __slots__ = ("_breaks",)

    def __init__(self, breaks: list[int]) -> None:
        self._breaks = breaks

    def __call__(self, offset: int) -> int:
        return bisect.bisect_left(self._breaks, offset)


def iter_hosts(addresses: tuple[Address, ...]) -> Iterator[str]:
    """The hosts named, in order, each once."""
    seen: set[str] = set()
    for a in addresses:
        if a.host and a.host not in seen:
            seen.add(a.host)
            yield a.host
