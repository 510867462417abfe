"""Pure HTTP/1.1 framing for the audit probes: build a request, tell when an answer is
complete, and parse it into a small record. No I/O here.

The probes write their own request bytes (rather than using an HTTP client) because the
browser-risk checks must send exactly the ``Host`` and ``Origin`` a hostile page would
cause, and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Enough of any answer to fingerprint it; the rest is never read.
MAX_ANSWER = 64 * 1024


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]  # names lower-cased, in the order received
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def text(self) -> str:
        """Status line, headers and body as one string, for the catalogue's regexes."""
        head = "\n".join(f"{k}: {v}" for k, v in self.headers)
        body = self.body.decode("utf-8", "replace")
        return f"HTTP {self.status} {self.reason}\n{head}\n\n{body}"


def build_request(
    method: str,
    path: str,
    host: str,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
) -> bytes:
    """One request with ``Connection: close`` so that the server ends the answer."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    names = {k.lower() for k, _ in headers}
    lines += [f"{k}: {v}" for k, v in headers]
    if "user-agent" not in names:
        lines.append("User-Agent: homeport-audit")
    if "connection" not in names:
        lines.append("Connection: close")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def looks_like_http(data: bytes) -> bool:
    return data.startswith(b"HTTP/1.") or data.startswith(b"HTTP/2")


def complete(data: bytes) -> bool:
    """Whether ``data`` holds a whole answer (or enough of one) so reading can stop.

    RFC 9112 §6.3: the body length comes from Content-Length, or chunked framing; a
    1xx/101/204/304 answer has none. A streamed answer (Server-Sent Events, an endless
    chunked body) is cut once its first event or 16 KiB have arrived.
    """
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return len(data) >= MAX_ANSWER
    status = _status(head)
    if status is None or status in (101, 204, 304) or 100 <= status < 200:
        return True
    lower = head.lower()
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", lower)
    if m:
        return len(body) >= int(m.group(1))
    if b"text/event-stream" in lower and b"\n\n" in body:
        return True
    if b"transfer-encoding: chunked" in lower and body.endswith(b"0\r\n\r\n"):
        return True
    return len(body) >= 16 * 1024


def _status(head: bytes) -> int | None:
    m = re.match(rb"HTTP/\d(?:\.\d)? (\d{3})", head)
    return int(m.group(1)) if m else None


def parse_response(data: bytes) -> Response | None:
    """Parse an answer (possibly cut short); None when it is not HTTP."""
    if not looks_like_http(data):
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/\d(?:\.\d)? (\d{3}) ?(.*)", lines[0])
    if not m:
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip().lower(), value.strip()))
    resp = Response(int(m.group(1)), m.group(2), tuple(headers), body)
    if (resp.header("transfer-encoding") or "").lower() == "chunked":
        resp = Response(resp.status, resp.reason, resp.headers, dechunk(body))
    return resp


def dechunk(body: bytes) -> bytes:
    """Undo chunked transfer coding (RFC 9112 §7.1), tolerating a cut-off tail."""
    out = bytearray()
    rest = body
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            break
        try:
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        except ValueError:
            break
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2 :]
    return bytes(out)


_TITLE = re.compile(rb"<title[^>]*>([^<]{0,200})</title>", re.IGNORECASE)


def title(body: bytes) -> str | None:
    m = _TITLE.search(body)
    if not m:
        return None
    text = " ".join(m.group(1).decode("utf-8", "replace").split())
    return text or None
