"""Pure: read what the user gave ``homeport explain`` — an address, a URL or an error text.

``parse_input`` never touches the network. An address goes through
``homeport.addr.parse_target``; anything else is matched against ``rules.RULES`` in order,
and the address is taken from the rule's named groups, or else from the first address-like
text (``rules.ADDRESS_PATTERNS``), or else from ``--at``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from homeport.addr import Target, ip, parse_target
from homeport.errors import UsageError
from homeport.explain.rules import ADDRESS_PATTERNS, RULES, Kind, Rule

_ACCEPTED = (
    "accepted: PORT, HOST:PORT, [IPv6]:PORT, a URL, or an error message such as"
    " 'connect ECONNREFUSED ::1:3000' or 'Address already in use'"
)


@dataclass(frozen=True, slots=True)
class Parsed:
    """The input, read: which rule matched (None for a plain address) and where it points."""

    text: str
    rule: Rule | None
    #: The address the program used (an IP literal without brackets, or a name).
    host: str | None
    port: int | None
    #: The name the user typed when the tool also printed the address it tried (psql).
    name: str | None = None

    @property
    def kind(self) -> Kind | None:
        return self.rule.kind if self.rule else None

    @property
    def tool(self) -> str | None:
        return self.rule.tool if self.rule else None


def parse_input(text: str, at: str | None = None) -> Parsed:
    """Read ``text``; ``at`` (HOST:PORT, :PORT or PORT) supplies or overrides the address."""
    raw = text.strip()
    if not raw:
        raise UsageError(f"nothing to explain ({_ACCEPTED})")
    override = parse_target(at) if at else None
    if "\n" not in raw and " " not in raw:
        try:
            t = parse_target(raw)
        except UsageError:
            pass
        else:
            return _with_override(Parsed(raw, None, t.host, t.port), override)
    for rule in RULES:
        m = rule.compiled().search(raw)
        if m:
            return _with_override(_from_match(raw, rule, m), override)
    raise UsageError(f"cannot read {_clip(raw)!r} as an address or a known error ({_ACCEPTED})")


def _from_match(raw: str, rule: Rule, m: re.Match[str]) -> Parsed:
    groups = m.groupdict()
    host = _clean_host(groups.get("host")) or _clean_host(groups.get("name"))
    name = _clean_host(groups.get("name"))
    port = _port(groups.get("port"))
    if host is None or port is None:
        found_host, found_port = find_address(raw)
        if host is None and (port is None or found_port in (None, port)):
            host = found_host
        port = port if port is not None else found_port
    return Parsed(raw, rule, host, port, name if name != host else None)


def find_address(text: str) -> tuple[str | None, int | None]:
    """The first address-like ``host:port`` in free text (URL, ``[v6]:p``, ``a.b.c.d:p``)."""
    best: tuple[int, str, int] | None = None
    for pattern in ADDRESS_PATTERNS:
        for m in re.finditer(pattern, text, re.IGNORECASE):
            host, port = _clean_host(m.group("host")), _port(m.group("port"))
            if host is None or port is None:
                continue
            if best is None or m.start() < best[0]:
                best = (m.start(), host, port)
            break
    return (best[1], best[2]) if best else (None, None)


def _with_override(p: Parsed, t: Target | None) -> Parsed:
    if t is None:
        return p
    return Parsed(p.text, p.rule, t.host or p.host, t.port, p.name)


def _clean_host(h: str | None) -> str | None:
    if not h:
        return None
    h = h.strip().strip("'\"")
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if not h:
        return None
    a = ip(h)
    return str(a) if a is not None and "%" not in h else h


def _port(p: str | None) -> int | None:
    if p is None or not p.isdigit():
        return None
    n = int(p)
    return n if 0 < n < 65536 else None


def _clip(text: str, width: int = 60) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "…"
