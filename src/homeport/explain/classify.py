"""Pure: the failure class of a text from its errno names, errno numbers and phrases alone.

The layer under the rules: a client no rule names still says ``[Errno 111]``, ``(111)``,
``os error 61``, ``WSAECONNREFUSED``, ``code 10061`` or "actively refused", and that is
enough to know what happened. Tables are data:

- ``ERRNO_NAMES``: symbolic names (POSIX, Node/libuv, Windows ``WSAE*``) -> kind;
- ``ERRNO_NUMBERS``: numbers of Linux, macOS/BSD and Windows Sockets -> (name, system, kind);
  a number counts only in an errno-like context (``[Errno 111]``, ``errno 111``,
  ``os error 111``, ``(111)`` after an error, ``code 10061``, ``[WinError 10061]``), never as
  a port or part of a time;
- ``PHRASES``: strerror texts, Windows' message texts and the words clients print
  ("Connect call failed", "Can't connect to", "ServerSelectionTimeoutError" ...).

Evidence has a strength (an errno beats its strerror text, which beats a client's phrase);
between equals the root cause wins over its wrapper (refused over a selection timeout).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from homeport.explain.extract import LazyPattern
from homeport.explain.rules import Kind

#: Symbolic errno names -> kind. EACCES is bind()'s unless a connect is in sight (``classify``).
ERRNO_NAMES: dict[str, Kind] = {
    "ECONNREFUSED": "refused",
    "WSAECONNREFUSED": "refused",
    "EADDRINUSE": "in-use",
    "WSAEADDRINUSE": "in-use",
    "EACCES": "permission",
    "WSAEACCES": "permission",
    "EPERM": "connect-denied",
    "EADDRNOTAVAIL": "not-available",
    "WSAEADDRNOTAVAIL": "not-available",
    "ETIMEDOUT": "timeout",
    "WSAETIMEDOUT": "timeout",
    "ECONNRESET": "reset",
    "WSAECONNRESET": "reset",
    "ECONNABORTED": "reset",
    "WSAECONNABORTED": "reset",
    "EPIPE": "reset",
    "EHOSTUNREACH": "unreachable",
    "WSAEHOSTUNREACH": "unreachable",
    "ENETUNREACH": "unreachable",
    "WSAENETUNREACH": "unreachable",
    "ENOTFOUND": "not-found",
    "EAI_NONAME": "not-found",
    "EAI_AGAIN": "not-found",
    "WSAHOST_NOT_FOUND": "not-found",
    # A connect to a Unix socket path that does not exist (Node: `connect ENOENT /path`).
    "ENOENT": "refused",
}

#: errno numbers -> (name, where, kind). Linux (asm-generic/errno.h), macOS/BSD
#: (sys/errno.h) and Windows Sockets (winerror.h); the sets do not collide on the
#: network errors (61 is ENODATA on Linux, which no connect returns).
ERRNO_NUMBERS: dict[int, tuple[str, str, Kind]] = {
    111: ("ECONNREFUSED", "Linux", "refused"),
    61: ("ECONNREFUSED", "macOS/BSD", "refused"),
    10061: ("WSAECONNREFUSED", "Windows", "refused"),
    98: ("EADDRINUSE", "Linux", "in-use"),
    48: ("EADDRINUSE", "macOS/BSD", "in-use"),
    10048: ("WSAEADDRINUSE", "Windows", "in-use"),
    13: ("EACCES", "Linux, macOS/BSD", "permission"),
    10013: ("WSAEACCES", "Windows", "permission"),
    1: ("EPERM", "Linux, macOS/BSD", "connect-denied"),
    99: ("EADDRNOTAVAIL", "Linux", "not-available"),
    49: ("EADDRNOTAVAIL", "macOS/BSD", "not-available"),
    10049: ("WSAEADDRNOTAVAIL", "Windows", "not-available"),
    110: ("ETIMEDOUT", "Linux", "timeout"),
    60: ("ETIMEDOUT", "macOS/BSD", "timeout"),
    10060: ("WSAETIMEDOUT", "Windows", "timeout"),
    104: ("ECONNRESET", "Linux", "reset"),
    54: ("ECONNRESET", "macOS/BSD", "reset"),
    10054: ("WSAECONNRESET", "Windows", "reset"),
    103: ("ECONNABORTED", "Linux", "reset"),
    53: ("ECONNABORTED", "macOS/BSD", "reset"),
    10053: ("WSAECONNABORTED", "Windows", "reset"),
    32: ("EPIPE", "Linux, macOS/BSD", "reset"),
    113: ("EHOSTUNREACH", "Linux", "unreachable"),
    65: ("EHOSTUNREACH", "macOS/BSD", "unreachable"),
    10065: ("WSAEHOSTUNREACH", "Windows", "unreachable"),
    101: ("ENETUNREACH", "Linux", "unreachable"),
    51: ("ENETUNREACH", "macOS/BSD", "unreachable"),
    10051: ("WSAENETUNREACH", "Windows", "unreachable"),
    11001: ("WSAHOST_NOT_FOUND", "Windows", "not-found"),
    # MariaDB's client reports a failed non-blocking connect with EINPROGRESS (115)
    # and a missing socket file with ENOENT (2): counted only beside a connect phrase.
    115: ("EINPROGRESS", "Linux", "refused"),
    2: ("ENOENT", "Linux, macOS/BSD", "refused"),
}
#: getaddrinfo's negative codes (glibc netdb.h), as Python prints them: ``[Errno -2]``.
_GAI_ERRORS: dict[int, tuple[str, str, Kind]] = {
    -2: ("EAI_NONAME", "glibc", "not-found"),
    -3: ("EAI_AGAIN", "glibc", "not-found"),
    -5: ("EAI_NODATA", "glibc", "not-found"),
}
#: Numbers that mean a failed connect only when the text also says it could not connect.
_NEEDS_CONNECT = frozenset({115, 2, 1, 32})

#: An errno number in its context: the group ``n`` is the number.
ERRNO_CONTEXT = LazyPattern(
    r"\[Errno (?P<a>-?\d{1,5})\]|\berrno[ =:]{0,2}(?P<b>\d{1,5})\b|\bos error (?P<c>\d{1,5})\b"
    r"|\[WinError (?P<d>\d{1,5})\]|\b(?:code|error)[ =:]{1,2}(?P<e>\d{1,5})\b"
    r"|(?<=[\w'\"] )\((?P<f>\d{1,5})\)(?=\s*$|\s*[.;,\n])",
    re.IGNORECASE | re.MULTILINE,
)
_NAMES = LazyPattern(r"\b(?:WSA)?E[A-Z_]{3,15}\b|\bWSAHOST_NOT_FOUND\b")

#: (pattern, kind, strength): strerror texts (2), client phrases (1).
PHRASES: tuple[tuple[str, Kind, int], ...] = (
    (r"connection refused|actively refused|ConnectionRefused|connection was refused", "refused", 2),
    (r"target machine actively refused it|No connection could be made", "refused", 2),
    (
        r"address already in use|Only one usage of each socket address|already in use"
        r"|already bound|port is not available",
        "in-use",
        2,
    ),
    (r"forbidden by its access permissions", "permission", 2),
    (
        r"cannot assign requested address|can't assign requested address"
        r"|requested address is not valid in its context",
        "not-available",
        2,
    ),
    (r"connection reset|reset by peer|forcibly closed by the remote host|broken pipe", "reset", 2),
    (r"no route to host|network is unreachable|host is unreachable", "unreachable", 2),
    (
        r"name or service not known|nodename nor servname|No such host is known|getaddrinfo failed"
        r"|Temporary failure in name resolution|could not resolve",
        "not-found",
        2,
    ),
    (
        r"connection timed out|operation timed out|did not properly respond after a period of"
        r" time|timed out",
        "timeout",
        2,
    ),
    (r"Cannot connect to the Docker daemon", "refused", 1),
    # strerror(ENOENT): a connect() to a Unix socket path no server created
    (r"connect: no such file or directory|connect ENOENT", "refused", 2),
    (
        r"Connect call failed|Can't connect to|Cannot connect to|Couldn't connect|Could not connect"
        r"|Unable to connect|Failed to connect|failed to establish a new connection|connect failed"
        r"|Connection error|connection attempts? failed|Is the server running|ECONNECTION"
        r"|Can't reach|could not be established|\brefused\b",
        "refused",
        1,
    ),
    (r"ServerSelectionTimeoutError|MongoServerSelectionError|No servers found", "timeout", 1),
    (r"\bTimeoutError\b|\bConnectTimeout", "timeout", 1),
)
_PHRASES = tuple((LazyPattern(p, re.IGNORECASE), k, s) for p, k, s in PHRASES)
_CONNECTING = LazyPattern(r"connect|dial", re.IGNORECASE)

#: Between equally strong evidence, the root cause over what wraps it.
_PRIORITY: tuple[Kind, ...] = (
    "refused",
    "reset",
    "unreachable",
    "connect-denied",
    "not-found",
    "in-use",
    "not-available",
    "permission",
    "timeout",
)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What made the class: the kind, how sure (3 errno, 2 strerror, 1 a client's words),
    where in the text, and in words ("errno 111: ECONNREFUSED on Linux")."""

    kind: Kind
    strength: int
    start: int
    says: str


def evidence(text: str) -> tuple[Evidence, ...]:
    """All the evidence in ``text``, in text order."""
    out: list[Evidence] = []
    connecting = _CONNECTING.search(text) is not None
    for m in ERRNO_CONTEXT.finditer(text):
        raw = next(v for v in m.groups() if v is not None)
        n = int(raw)
        row = ERRNO_NUMBERS.get(n) if n >= 0 else _GAI_ERRORS.get(n)
        # A bare "(111)" is an errno only in a text about connecting (MySQL's form).
        bare = m.group("f") is not None
        if row is None or ((n in _NEEDS_CONNECT or bare) and not connecting):
            continue
        name, where, kind = row
        out.append(Evidence(_eacces(kind, text), 3, m.start(), f"errno {n}: {name} on {where}"))
    for m in _NAMES.finditer(text):
        named = ERRNO_NAMES.get(m.group(0))
        if named is not None and (m.group(0) != "ENOENT" or connecting):
            out.append(Evidence(_eacces(named, text), 3, m.start(), m.group(0)))
    for pattern, said, strength in _PHRASES:
        for m in pattern.finditer(text):
            out.append(Evidence(said, strength, m.start(), repr(m.group(0))))
    return tuple(sorted(out, key=lambda e: e.start))


def classify(text: str) -> Evidence | None:
    """The strongest evidence; among equals, the root cause (``_PRIORITY``), then the last."""
    found = evidence(text)
    if not found:
        return None
    return max(
        enumerate(found),
        key=lambda ie: (ie[1].strength, -_PRIORITY.index(ie[1].kind), ie[0]),
    )[1]


def _eacces(kind: Kind, text: str) -> Kind:
    """EACCES from connect() is a local policy's no (connect-denied), from bind() privilege."""
    if (
        kind == "permission"
        and _CONNECTING.search(text)
        and not re.search(r"\b(?:bind|listen)\b", text, re.IGNORECASE)
    ):
        return "connect-denied"
    return kind
