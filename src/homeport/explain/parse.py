"""Pure: read what the user gave ``homeport explain`` — an address, a URL or an error text.

``parse_input`` never touches the network. An address goes through
``homeport.addr.parse_target``; anything else is read in three layers, on the bounded text
``window.focus`` gives (so any input is read in linear time):

1. ``rules.RULES`` in order: the first rule that matches names the tool and the kind;
2. when none matches, ``classify``: the kind from errno names and numbers and the phrases
   clients print, whatever the tool (a diagnosis, not "unknown text");
3. the address from the rule's named groups, or else from ``extract`` (every form tools
   print; the one the failure is about), or else the rule's default port, or ``--at``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from homeport.addr import Target, parse_target
from homeport.errors import UsageError
from homeport.explain import extract
from homeport.explain._needles import NEEDLES
from homeport.explain.classify import Evidence, classify
from homeport.explain.rules import RULES, Kind, Rule
from homeport.explain.window import focus

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
    #: The Unix socket path the text names (Docker's socket, libpq's, MySQL's).
    path: str | None = None
    #: The port is the tool's default, not read from the text (MariaDB prints no port).
    port_assumed: bool = False
    #: What made the class when no rule named the text ("errno 111: ECONNREFUSED on Linux").
    evidence: str | None = None

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
    if "\n" not in raw and " " not in raw and len(raw) <= _ADDRESS_MAX:
        try:
            t = parse_target(raw)
        except UsageError:
            pass
        else:
            return _with_override(Parsed(raw, None, t.host, t.port), override)
    seen = focus(raw)
    low = seen.lower()
    for rule in RULES:
        needles = NEEDLES.get(rule.id)
        if needles and not any(n in low for n in needles):
            continue  # cannot match: spare its compile and its search (prefilter.py)
        m = rule.compiled().search(seen)
        if m:
            return _with_override(_from_match(seen, rule, m), override)
    ev = classify(seen)
    if ev is not None:
        return _with_override(_from_evidence(seen, ev), override)
    raise UsageError(f"cannot read {_clip(raw)!r} as an address or a known error ({_ACCEPTED})")


#: An address typed alone is short; a longer single token is read as text.
_ADDRESS_MAX = 2048


def _from_match(raw: str, rule: Rule, m: re.Match[str]) -> Parsed:
    groups = m.groupdict()
    host = _clean_host(groups.get("host")) or _clean_host(groups.get("name"))
    name = _clean_host(groups.get("name"))
    port = _port(groups.get("port"))
    path = None
    if rule.default_host is not None:  # the text names no address: the tool's own
        return Parsed(raw, rule, rule.default_host, rule.default_port, port_assumed=True)
    if host is None or port is None:
        found = extract.choose(raw, extract.find_addresses(raw), rule.kind, m.start())
        if found is not None:
            path = found.path
            if path is None:  # a socket path's port (.s.PGSQL.5432) is no TCP port
                if host is None and (port is None or found.port in (None, port)):
                    host = found.host
                    name = name or found.name
                port = port if port is not None else found.port
    assumed = port is None and path is None and rule.default_port is not None
    if assumed:
        port = rule.default_port
    return Parsed(raw, rule, host, port, name if name != host else None, path, assumed)


def _from_evidence(raw: str, ev: Evidence) -> Parsed:
    """A text no rule names: the class from its errno or phrase, the address from the text."""
    rule = Rule(f"class-{ev.kind}", "unknown", ev.kind, "")
    found = extract.choose(raw, extract.find_addresses(raw), ev.kind, ev.start)
    if found is None:
        return Parsed(raw, rule, None, None, evidence=ev.says)
    if found.path is not None:
        return Parsed(raw, rule, None, None, path=found.path, evidence=ev.says)
    return Parsed(raw, rule, found.host, found.port, found.name, evidence=ev.says)


def find_address(text: str) -> tuple[str | None, int | None]:
    """The first full ``host:port`` address in free text, in any form ``extract`` reads."""
    for a in extract.find_addresses(focus(text)):
        if a.host is not None and a.port is not None:
            return a.host, a.port
    return None, None


def _with_override(p: Parsed, t: Target | None) -> Parsed:
    if t is None:
        return p
    return Parsed(p.text, p.rule, t.host or p.host, t.port, p.name, p.path, False, p.evidence)


_clean_host = extract.clean_host


def _port(p: str | None) -> int | None:
    if p is None or not p.isdigit():
        return None
    n = int(p)
    return n if 0 < n < 65536 else None


def _clip(text: str, width: int = 60) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "…"
