"""HTTP/1.1 framing for the proxy, without I/O: validate a parsed request head, build the head
sent upstream and the head sent back to the client.

llhttp (through ``httptools``) does the tokenising and already refuses most smuggling vectors:
Content-Length with Transfer-Encoding, duplicate Content-Length, bad chunk sizes, obs-fold, bare
CR and NUL in field values (RFC 9112 §6.3, §5.2, §5.5). This module adds what a proxy must check
on top: exactly one valid Host (RFC 9112 §3.2), no Transfer-Encoding in HTTP/1.0 (§6.1),
origin-form or absolute-form targets only (§3.2.1-2), and the hop-by-hop rules of RFC 9110 §7.6.1.

Field names with an underscore are not forwarded unless the route allows them
(``upstream_head(underscores=True)``): CGI-style servers (CGI, PHP-FPM, WSGI) map ``_`` and
``-`` to the same variable, so ``Transfer_Encoding`` would frame the request for them and
``X_Forwarded_For`` would forge the client address the gateway sets. nginx drops them for the
same reason (``underscores_in_headers off``).

Everything here takes and returns bytes; names are compared lower-cased.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from http import HTTPStatus

#: RFC 9110 §7.6.1: fields meant for one connection only, never forwarded.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
    }
)
_HOP_LENGTHS = frozenset(len(n) for n in HOP_BY_HOP)
#: Fields the proxy rewrites itself (it never trusts them from a non-loopback peer).
FORWARDING = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded"}
)
_SKIP = HOP_BY_HOP | FORWARDING | {b"via"}
#: HOP_BY_HOP as a regex alternation, for scans of raw (lower-cased) heads.
_HOP_NAMES = (
    rb"transfer-encoding|connection|keep-alive|te|trailer|upgrade"
    rb"|proxy-connection|proxy-authenticate|proxy-authorization"
)


class ProtocolError(Exception):
    """The request cannot be proxied; ``status`` is what the client gets, and the connection
    is closed after it (the framing can no longer be trusted)."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class RequestHead:
    """One request head as received, with the fields the proxy decides on pulled out."""

    method: bytes
    target: bytes  # origin-form ("/path?query") or "*"
    version: bytes  # b"1.1" or b"1.0"
    host: bytes
    keep_alive: bool
    headers: list[tuple[bytes, bytes]]  # forwardable fields (hop-by-hop and forwarding removed)
    upgrade: bytes | None = None  # the Upgrade field when the client asks to switch
    chunked: bool = False
    content_length: int = 0
    expect_continue: bool = False
    connection_options: tuple[bytes, ...] = ()
    xff: bytes | None = None
    xf_proto: bytes | None = None
    xf_host: bytes | None = None
    forwarded: bytes | None = None
    via: bytes | None = None
    #: A field name with ``_`` was received (kept in ``headers``; ``upstream_head`` drops it
    #: unless the route allows underscores).
    underscored: bool = False
    #: Lower-cased name -> value for the few fields the guard reads (first occurrence).
    extra: dict[bytes, bytes] = field(default_factory=dict)
    #: Set by ``whole_head`` instead of ``headers`` and ``extra``: the field lines as received
    #: (``"\r\nName: value..."``; a lone Connection field cut out), all forwardable as they are.
    raw: bytes | None = None

    @property
    def has_body(self) -> bool:
        return self.chunked or self.content_length > 0

    def field(self, name: bytes) -> bytes | None:
        """The first value of a field the guard or the pages read (``name`` lower-cased)."""
        raw = self.raw
        if raw is None:
            return self.extra.get(name)
        start = raw.lower().find(b"\r\n" + name + b":")
        if start < 0:
            return None
        start += len(name) + 3
        end = raw.find(b"\r", start)
        return (raw[start:] if end < 0 else raw[start:end]).lstrip(b" \t")


_GUARD_FIELDS = frozenset(
    {
        b"authorization",
        b"cookie",
        b"origin",
        b"sec-fetch-site",
        b"accept",
        b"access-control-request-private-network",
    }
)
# Sentinels, compared with ``is``.
_PLAIN, _SPECIAL, _HOST, _LENGTH, _EXPECT, _GUARD = "plain", "special", "host", "cl", "ex", "guard"
#: Lower-cased name -> what ``parse_head`` does with the field; absent: forward it as is.
_KIND: dict[bytes, str] = {
    **dict.fromkeys(_SKIP, _SPECIAL),
    **dict.fromkeys(_GUARD_FIELDS, _GUARD),
    b"host": _HOST,
    b"content-length": _LENGTH,
    b"expect": _EXPECT,
}


def parse_head(
    method: bytes,
    url: bytes,
    version: str,
    raw: list[tuple[bytes, bytes]],
    keep_alive: bool,
    upgrade: bool,
) -> RequestHead:
    """Validate a head that llhttp accepted and sort its fields; raises ``ProtocolError``."""
    if method == b"CONNECT":
        raise ProtocolError(
            405, "method-not-allowed", "CONNECT is not supported: not a forward proxy"
        )
    head = RequestHead(method, url, b"1.1" if version == "1.1" else b"1.0", b"", keep_alive, [])
    hosts = 0
    te: bytes | None = None
    for name, value in raw:
        lname = name.lower()
        kind = _KIND.get(lname, _PLAIN)  # one lookup for the usual field, not five tests
        if kind is _PLAIN:  # no name the proxy acts on has "_": only plain ones can
            head.headers.append((name, value))
            if _UNDERSCORE in name:
                head.underscored = True
        elif kind is _SPECIAL:
            _sort_special(head, lname, value)
            if lname == b"transfer-encoding":
                te = value
        else:
            head.headers.append((name, value))
            if kind is _HOST:
                hosts += 1
                head.host = value
            elif kind is _LENGTH:
                head.content_length = int(value)  # llhttp checked the digits
            elif kind is _EXPECT:
                head.expect_continue = value.lower() == b"100-continue"
            elif lname not in head.extra:
                head.extra[lname] = value
    if hosts != 1:
        raise ProtocolError(400, "bad-request", "a request needs exactly one Host field")
    if te is not None:
        if head.version == b"1.0":
            # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
            raise ProtocolError(400, "bad-request", "Transfer-Encoding in an HTTP/1.0 request")
        head.chunked = True  # llhttp only accepts chunked as the final coding
    if upgrade and head.upgrade is None:
        raise ProtocolError(400, "bad-request", "Connection: upgrade without an Upgrade field")
    if not upgrade:
        head.upgrade = None
    _check_target(head)
    return head


_VERSIONS = (b" HTTP/1.1", b" HTTP/1.0")
#: Request fields that need ``parse_head``'s field-by-field treatment: framing (RFC 9112 §6),
#: Expect, hop-by-hop (RFC 9110 §7.6.1), forwarding and Via. Host is here to be counted.
_REQ_NAMES_TEXT = (
    rb"\r\n(host|content-length|expect|x-forwarded-for|x-forwarded-proto|x-forwarded-host"
    rb"|forwarded|via|" + _HOP_NAMES
)
_REQ_NAMES = re.compile(_REQ_NAMES_TEXT + rb"):")
#: The same, also finding names with "_" (``whole_head`` leaves those to ``parse_head``),
#: used only when the head has an "_" at all. One scan for both (callgrind, per
#: ``whole_head`` call: +489 instructions on wrk's GET for the memchr, +3,100 on a browser
#: GET whose cookies have "_", against +7,000 for a second regex search).
_REQ_NAMES_US = re.compile(_REQ_NAMES_TEXT + rb"|[^:\r_]*+_[^:\r]*+):")
#: ``0x5F in data`` is one memchr (31 ns on a wrk head here); ``b"_" in data`` first tries
#: its argument as an int, raising and clearing a TypeError inside CPython 3.11 (146-287 ns).
_UNDERSCORE = ord("_")
_HOST_ONLY = [b"host"]
_HOST_CONNECTION = [b"connection", b"host"]
_CONNECTION_ALONE = (b"close", b"keep-alive")


def whole_head(data: bytes, limit: int) -> tuple[bytes, bytes, bytes, bytes] | None:
    """``(target, version, host, field_lines)`` when ``data``, read at the start of a request,
    is exactly one plain request head: ``METHOD SP /target SP HTTP/1.x``, one Host, no field
    the proxy must act on (``_REQ_NAMES``) but a lone ``Connection: close|keep-alive`` (cut
    out), no field name with ``_``, CRLF CRLF and nothing after it. Else None: the caller
    parses it field by field (a body, pipelined requests, a head over several reads,
    hop-by-hop, forwarding or underscored fields, absolute-form targets).

    A shape check before llhttp validates the bytes; that it accepts them is what makes the
    slicing safe. llhttp requires CRLF line ends and refuses bare CR/LF, obs-fold and
    whitespace before a colon (RFC 9112 §2.2, §5.1-2), so the head ends at the first CRLF CRLF
    and every field line starts right after a CRLF. No Content-Length and no
    Transfer-Encoding means no body (RFC 9112 §6.3 item 7): llhttp ends the request within
    ``data``, and the next one starts on a read boundary too."""
    end = len(data) - 4
    if end > limit or data.find(b"\r\n\r\n") != end:
        return None
    line_end = data.find(b"\r\n")
    if line_end < 9:
        # Too short for " HTTP/1.x". (Tested, not left to a wrapping slice: mypyc raises
        # SystemError on a slice whose negative start wraps past its stop.)
        return None
    version = data[line_end - 9 : line_end]
    if version not in _VERSIONS:
        return None
    sp = data.find(b" ", 0, line_end)
    target = data[sp + 1 : line_end - 9]
    # One space each side of an origin-form target (llhttp tolerates more, and then on_url's
    # value is not this slice). CONNECT goes the long way, to its 405.
    if target[:1] != b"/" or target[-1:] == b" " or data[:sp] == b"CONNECT":
        return None
    fields = data[line_end:end]
    lower = fields.lower()
    # Underscored names are dropped per route (module docstring): the field-by-field path.
    names = (_REQ_NAMES_US if _UNDERSCORE in fields else _REQ_NAMES).findall(lower)
    if names != _HOST_ONLY:
        if sorted(names) != _HOST_CONNECTION:
            return None
        # A lone "Connection: close" or "keep-alive" (wrk -H, browsers, HTTP/1.0 clients):
        # llhttp's should_keep_alive() has it, and the line goes (RFC 9110 §7.6.1).
        start = lower.find(b"\r\nconnection:")
        stop = lower.find(b"\r", start + 2)
        value = lower[start + 13 :] if stop < 0 else lower[start + 13 : stop]
        if value.strip(b" \t") not in _CONNECTION_ALONE:
            return None
        fields = fields[:start] if stop < 0 else fields[:start] + fields[stop:]
        lower = lower[:start] if stop < 0 else lower[:start] + lower[stop:]
    start = lower.find(b"\r\nhost:") + 7
    stop = fields.find(b"\r", start)
    host = (fields[start:] if stop < 0 else fields[start:stop]).lstrip(b" \t")
    return target, version[6:], host, fields


def request_fields(fields: bytes) -> list[tuple[bytes, bytes]]:
    """``"\r\nName: value..."`` (llhttp-checked) -> [(name, value), ...] as llhttp's on_header
    reports them: the value's leading whitespace dropped, trailing whitespace kept."""
    out = []
    for line in fields.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        out.append((name, value.lstrip(b" \t")))
    return out


def unraw(head: RequestHead) -> RequestHead:
    """The same head as ``parse_head`` makes it (``headers`` and ``extra`` filled), for the
    rare paths that edit fields (the guard strips credentials) or list them (control API)."""
    if head.raw is None:
        return head
    version = head.version.decode()
    fields = request_fields(head.raw)
    return parse_head(head.method, head.target, version, fields, head.keep_alive, False)


def _sort_special(head: RequestHead, lname: bytes, value: bytes) -> None:
    if lname == b"connection":
        opts = tuple(t.strip().lower() for t in value.split(b",") if t.strip())
        head.connection_options += opts
    elif lname == b"upgrade":
        head.upgrade = value
    elif lname == b"x-forwarded-for":
        head.xff = value if head.xff is None else head.xff + b", " + value
    elif lname == b"x-forwarded-proto":
        head.xf_proto = value
    elif lname == b"x-forwarded-host":
        head.xf_host = value
    elif lname == b"forwarded":
        head.forwarded = value if head.forwarded is None else head.forwarded + b", " + value
    elif lname == b"via":
        head.via = value if head.via is None else head.via + b", " + value


def _check_target(head: RequestHead) -> None:
    t = head.target
    if t[:1] == b"/" or (t == b"*" and head.method == b"OPTIONS"):
        return
    if t[:7].lower() == b"http://":
        # RFC 9112 §3.2.2: absolute-form; its authority replaces Host.
        rest = t[7:]
        slash = rest.find(b"/")
        authority, path = (rest, b"/") if slash < 0 else (rest[:slash], rest[slash:])
        if not authority or b"@" in authority:
            raise ProtocolError(400, "bad-request", "bad absolute-form request target")
        head.host, head.target = authority, path
        head.headers = [(n, authority if n.lower() == b"host" else v) for n, v in head.headers]
        return
    raise ProtocolError(400, "bad-request", "request target must be origin-form (/path)")


def upstream_head(
    head: RequestHead,
    *,
    client_ip: str,
    trusted: bool,
    via: bytes,
    drop: frozenset[bytes] = frozenset(),
    underscores: bool = False,
) -> bytes:
    """The request head sent upstream: HTTP/1.1, hop-by-hop fields gone, forwarding fields set.

    ``trusted`` says whether the peer may have set X-Forwarded-* / Forwarded / Via itself
    (only loopback peers); otherwise those are replaced, never appended to. Field names with
    ``_`` are left out unless ``underscores`` (the route's ``allow_underscores``).
    """
    if head.raw is not None and not drop:
        # ``whole_head`` let no hop-by-hop, forwarding or framing field through: every field
        # line goes as it came, and the forwarding fields are the fresh ones.
        fwd = _fresh_forwarding(client_ip, head.host, via)
        line = (head.method, b" ", head.target, b" HTTP/1.1")
        return b"".join((*line, head.raw, b"\r\n", fwd, b"\r\n"))
    out = [head.method, b" ", head.target, b" HTTP/1.1\r\n"]
    skip = drop
    if head.connection_options:
        skip = drop | frozenset(head.connection_options)
    cut_underscored = head.underscored and not underscores
    for name, value in head.headers if head.raw is None else request_fields(head.raw):
        if skip and name.lower() in skip:
            continue
        if cut_underscored and _UNDERSCORE in name:
            continue
        out += (name, b": ", value, b"\r\n")
    if head.chunked:
        out.append(b"transfer-encoding: chunked\r\n")
    if head.upgrade is not None:
        out += (b"connection: upgrade\r\nupgrade: ", head.upgrade, b"\r\n")
    out += _forwarding(head, client_ip, trusted, via)
    out.append(b"\r\n")
    return b"".join(out)


def _forwarding(head: RequestHead, client_ip: str, trusted: bool, via: bytes) -> list[bytes]:
    fresh = head.xff is None and head.forwarded is None and head.via is None
    if fresh and head.xf_proto is None and head.xf_host is None:
        return [_fresh_forwarding(client_ip, head.host, via)]
    return _build_forwarding(head, client_ip, trusted, via)


@functools.lru_cache(maxsize=1024)
def _fresh_forwarding(client_ip: str, host: bytes, via: bytes) -> bytes:
    """The common case (no incoming forwarding fields) is the same for every request of one
    client to one host: cached."""
    head = RequestHead(b"GET", b"/", b"1.1", host, True, [])
    return b"".join(_build_forwarding(head, client_ip, False, via))


def _build_forwarding(head: RequestHead, client_ip: str, trusted: bool, via: bytes) -> list[bytes]:
    ip = client_ip.encode()
    node = b'"[' + ip + b']"' if b":" in ip else ip
    elem = b"for=" + node + b";host=" + _quote(head.host) + b";proto=http"
    xff, fwd, proto, xhost, prior_via = ip, elem, b"http", head.host, via
    if trusted:
        if head.xff is not None:
            xff = head.xff + b", " + ip
        if head.forwarded is not None:
            fwd = head.forwarded + b", " + elem
        proto = head.xf_proto or proto
        xhost = head.xf_host or xhost
        if head.via is not None:
            prior_via = head.via + b", " + via
    return [
        b"x-forwarded-for: ", xff, b"\r\nx-forwarded-proto: ", proto,
        b"\r\nx-forwarded-host: ", xhost, b"\r\nforwarded: ", fwd,
        b"\r\nvia: ", prior_via, b"\r\n",
    ]  # fmt: skip


def _quote(value: bytes) -> bytes:
    # RFC 7239 §4: a host with ":" (port, IPv6) must be a quoted-string.
    return b'"' + value + b'"' if b":" in value else value


def response_head(
    status: int,
    reason: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    version: bytes,
    keep_alive: bool,
    chunked: bool,
    via: bytes,
) -> bytes:
    """The response head sent to the client: hop-by-hop fields of the upstream removed, our own
    framing and connection fields set (RFC 9110 §7.6.1)."""
    out = [b"HTTP/", version, b" %d " % status, reason or _reason(status), b"\r\n"]
    options: frozenset[bytes] = frozenset()
    for name, value in headers:
        # Only names as long as a hop-by-hop one need a look (saves a lower() per field).
        if len(name) in _HOP_LENGTHS and name.lower() in HOP_BY_HOP:
            if name.lower() == b"connection":
                options = options | {t.strip().lower() for t in value.split(b",")}
            continue
        out += (name, b": ", value, b"\r\n")
    if options - {b"close", b"keep-alive"}:
        out = _drop_listed(out, options)
    if chunked:
        out.append(b"transfer-encoding: chunked\r\n")
    if not keep_alive:
        out.append(b"connection: close\r\n")
    elif version == b"1.0":
        out.append(b"connection: keep-alive\r\n")  # HTTP/1.0 persists only when told so
    out += (b"via: ", via, b"\r\n\r\n")
    return b"".join(out)


#: Response fields the forwarding path looks at: framing and hop-by-hop names. llhttp has
#: already refused bare CR/LF, obs-fold and whitespace before the colon (RFC 9112 §5.1-2), so
#: every field line starts right after a CRLF, its name ends at the colon, and its value at
#: the next CR.
# Matched against a lower-cased copy: lower() plus a case-sensitive scan, which can skip
# ahead to each CRLF, costs a third of one IGNORECASE scan (and lower() keeps offsets).
_RESP_FIELDS = re.compile(rb"\r\n(content-length|" + _HOP_NAMES + rb"):([^\r]*)")
_HOP_LINES = re.compile(rb"\r\n(?:" + _HOP_NAMES + rb"):[^\r]*")
_CONN_ONLY = frozenset({b"close", b"keep-alive", b""})
#: What ``response_framing`` found to cut: nothing; one Connection field naming no other field
#: (nginx's "Connection: keep-alive"); hop-by-hop lines; or a Connection field naming other
#: fields, which must go too (the general path, RFC 9110 §7.6.1). Ordered: a head is in the
#: highest case any of its fields puts it in.
HOP_NONE, HOP_CONNECTION, HOP_LINES, HOP_LISTED = 0, 1, 2, 3


def response_framing(head: bytes) -> tuple[bool, bool, int]:
    """``(framed, chunked, hop)`` of a raw response head (status line and field lines, no
    final CRLF CRLF): Content-Length or Transfer-Encoding present, Transfer-Encoding present,
    and which ``HOP_*`` case it is."""
    framed = chunked = False
    hop = HOP_NONE
    # One scan in C; it finds the one or two fields that matter, not every field.
    for name, value in _RESP_FIELDS.findall(head.lower()):
        if name == b"content-length":
            framed = True
        elif name == b"connection":
            seen = HOP_CONNECTION if _conn_only(value) else HOP_LISTED
            hop = max(hop, HOP_LINES if hop else seen, seen)  # a second one: LINES at least
        else:
            hop = max(hop, HOP_LINES)
            if name == b"transfer-encoding":
                framed = chunked = True
    return framed, chunked, hop


def _conn_only(value: bytes) -> bool:
    value = value.strip(b" \t")  # lower-cased already
    if value in _CONN_ONLY:
        return True
    return {t.strip(b" \t") for t in value.split(b",")} <= _CONN_ONLY


def status_line(head: bytes, status: int, version: bytes) -> bytes:
    """The status line for the client: the service's own when it already says our version
    and has a reason phrase, else rebuilt (RFC 9110 §6.2: a proxy sends its own version)."""
    end = head.find(b"\r\n")
    line = head if end < 0 else head[:end]
    # llhttp accepted "HTTP/d.d ddd[ reason]": the reason starts at byte 13.
    if line[5:8] == version and len(line) > 13:
        return line
    return b"HTTP/%s %d %s" % (version, status, line[13:] or _reason(status))


def forward_response_head(
    head: bytes,
    status: int,
    *,
    version: bytes,
    keep_alive: bool,
    chunked: bool,
    via: bytes,
    hop: int,
) -> bytes:
    """The response head for the client, made from the service's raw head (status line and
    field lines, as llhttp accepted them) by cutting hop-by-hop lines out in place rather
    than rebuilding every field: the same fields as ``response_head`` on the parsed ones.
    ``hop`` is ``response_framing``'s finding for this head."""
    if hop == HOP_LISTED:
        end = head.find(b"\r\n")
        fields = b"" if end < 0 else head[end:]
        reason = head[13:end] if end >= 0 else head[13:]
        return response_head(
            status, reason, split_fields(fields), version=version,
            keep_alive=keep_alive, chunked=chunked, via=via,
        )  # fmt: skip
    if hop == HOP_CONNECTION:  # nginx and most servers: "Connection: keep-alive" only
        start = head.lower().find(b"\r\nconnection:")
        if start >= 0:
            end = head.find(b"\r\n", start + 2)
            head = head[:start] if end < 0 else head[:start] + head[end:]
    elif hop:
        head = _cut_hop_lines(head)
    # Usually the status line can stay: our version, a reason phrase (byte 13 on).
    if head[5:8] != version or head[12:13] != b" " or head[13:14] in (b"\r", b""):
        end = head.find(b"\r\n")
        head = status_line(head, status, version) + (b"" if end < 0 else head[end:])
    if keep_alive and not chunked and version == b"1.1":
        return b"".join((head, b"\r\nvia: ", via, b"\r\n\r\n"))
    out = [head]
    if chunked:
        out.append(b"\r\ntransfer-encoding: chunked")
    if not keep_alive:
        out.append(b"\r\nconnection: close")
    elif version == b"1.0":
        out.append(b"\r\nconnection: keep-alive")  # HTTP/1.0 persists only when told so
    out += (b"\r\nvia: ", via, b"\r\n\r\n")
    return b"".join(out)


def _cut_hop_lines(head: bytes) -> bytes:
    kept, pos = [], 0
    for m in _HOP_LINES.finditer(head.lower()):  # same offsets as ``head``
        kept.append(head[pos : m.start()])
        pos = m.end()
    kept.append(head[pos:])
    return b"".join(kept)


def split_fields(fields: bytes) -> list[tuple[bytes, bytes]]:
    """``"\r\nName: value\r\n..."`` (llhttp-checked field lines) -> [(name, value), ...]."""
    out = []
    for line in fields.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        out.append((name, value.strip(b" \t")))
    return out


def _drop_listed(out: list[bytes], options: frozenset[bytes]) -> list[bytes]:
    # Fields named in Connection are hop-by-hop too (RFC 9110 §7.6.1); rare, so done slowly.
    kept = out[:5]
    for i in range(5, len(out), 4):
        if out[i].lower() not in options:
            kept += out[i : i + 4]
    return kept


def chunk(data: bytes) -> list[bytes]:
    """One chunk of chunked transfer coding (RFC 9112 §7.1), as pieces for writelines."""
    return [b"%x\r\n" % len(data), data, b"\r\n"]


LAST_CHUNK = b"0\r\n\r\n"


def simple_response(
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"text/plain; charset=utf-8",
    headers: list[tuple[bytes, bytes]] | None = None,
    close: bool = False,
    head_only: bool = False,
) -> bytes:
    """A complete response that homeport writes itself (pages, errors, redirects)."""
    out = [b"HTTP/1.1 %d " % status, _reason(status), b"\r\n"]
    for name, value in headers or ():
        out += (name, b": ", value, b"\r\n")
    out += (b"content-type: ", content_type, b"\r\ncontent-length: %d\r\n" % len(body))
    out.append(b"cache-control: no-store\r\nx-content-type-options: nosniff\r\n")
    if close:
        out.append(b"connection: close\r\n")
    out.append(b"\r\n")
    if not head_only:
        out.append(body)
    return b"".join(out)


_REASONS: dict[int, bytes] = {s.value: s.phrase.encode() for s in HTTPStatus}
_REASONS[499] = b"Client Closed Request"


def _reason(status: int) -> bytes:
    return _REASONS.get(status, b"Unknown")


def split_host(host: str) -> tuple[str, int | None]:
    """``"api.localhost:8080"`` -> ("api.localhost", 8080); ``"[::1]"`` -> ("::1", None).

    Names are lower-cased and a trailing dot dropped (``app.localhost.`` is the same name).
    Raises ValueError for a malformed value.
    """
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise ValueError(f"not a host[:port]: {host!r}")
        name, rest = host[1:end], host[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"not a host[:port]: {host!r}")
        port_text = rest[1:] if rest else ""
    else:
        name, _, port_text = host.partition(":")
        if ":" in port_text:
            raise ValueError(f"not a host[:port]: {host!r}")
    port: int | None = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"not a host[:port]: {host!r}")
        port = int(port_text)
    name = name.lower().rstrip(".")
    if not name:
        raise ValueError(f"not a host[:port]: {host!r}")
    return name, port
