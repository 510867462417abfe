"""Pure: turn probe exchanges into an identification, using the catalogue's signatures.

An ``Exchange`` is what one probe sent and what came back; ``identify`` picks the most
specific service that matched and the strongest auth verdict (``open`` beats
``protected`` beats ``unknown``), keeping the exchange that proves it as evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from homeport.audit import catalogue, httpmsg, services
from homeport.audit.catalogue import Signature

Auth = Literal["open", "protected", "unknown"]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One probe: the exact bytes sent, the answer (capped), or why there was none."""

    probe: str
    sent: bytes
    answer: bytes = b""
    #: ``timeout``, ``refused``, ``reset`` or ``closed`` (no answer at all); None when answered.
    error: str | None = None
    tls: bool = False
    #: A dialog probe's verdict (e.g. ``mysql.Outcome.text()``): what its signatures match,
    #: since a conversation's raw bytes depend on the server's random scramble.
    outcome: str | None = None

    @property
    def response(self) -> httpmsg.Response | None:
        return httpmsg.parse_response(self.answer)

    def text(self) -> str:
        """The answer as the signatures see it."""
        if self.outcome is not None:
            return self.outcome
        resp = self.response
        return resp.text() if resp is not None else self.answer.decode("latin-1")


@dataclass(frozen=True, slots=True)
class Hit:
    signature: Signature
    exchange: Exchange
    version: str | None


@dataclass(frozen=True, slots=True)
class Identity:
    service: str
    label: str
    version: str | None = None
    auth: Auth = "unknown"
    tls: bool = False
    http: bool = False
    server: str | None = None
    title: str | None = None
    #: What the proving probe shows, in words (empty when only identified).
    proves: str = ""
    evidence: Exchange | None = None
    #: For a listener beyond loopback: the same proof sent from one of this host's own
    #: non-loopback addresses (Redis protected-mode and others refuse such clients).
    remote_auth: Auth | None = None
    remote_evidence: Exchange | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "label": self.label,
            "version": self.version,
            "auth": self.auth,
            "tls": self.tls,
            "http": self.http,
            "server": self.server,
            "title": self.title,
            "proves": self.proves,
            "evidence": evidence_json(self.evidence) if self.evidence else None,
            "remote_auth": self.remote_auth,
        }


def match(exchange: Exchange) -> list[Hit]:
    """Every signature of this probe (and the greeting ones) that the answer matches."""
    if not exchange.answer and exchange.outcome is None:
        return []
    text = exchange.text()
    resp = exchange.response
    hits = []
    for sig in catalogue.signatures_for(exchange.probe):
        if sig.status is not None and (resp is None or resp.status != sig.status):
            continue
        if sig.probe == "*" and (resp is not None or exchange.outcome is not None):
            continue  # a greeting is never an HTTP answer nor a dialog's verdict
        if not sig.pattern.search(text):
            continue
        hits.append(Hit(sig, exchange, _version(sig, text)))
    return hits


def _version(sig: Signature, text: str) -> str | None:
    if sig.version is None:
        return None
    m = re.search(sig.version, text, re.IGNORECASE)
    if not m:
        return None
    value = m.group(1).strip()
    return value if value.isprintable() and value else None


_AUTH_ORDER: dict[str, int] = {"open": 0, "protected": 1, "identify": 2}


def identify(exchanges: Iterable[Exchange]) -> Identity | None:
    """The best identification the exchanges support, or None when nothing matched."""
    exchanges = list(exchanges)
    hits = [h for ex in exchanges for h in match(ex)]
    if not hits:
        return None
    best = min(hits, key=lambda h: services.SERVICES[h.signature.service].rank)
    service = services.SERVICES[best.signature.service]
    mine = [h for h in hits if h.signature.service == service.id]
    # Among equals, a signature that says what it proves beats a bare identification.
    proof = min(mine, key=lambda h: (_AUTH_ORDER[h.signature.verdict], not h.signature.proves))
    verdict = proof.signature.verdict
    http_ex = next((ex for ex in exchanges if ex.response is not None), None)
    resp = http_ex.response if http_ex else None
    return Identity(
        service=service.id,
        label=service.label,
        version=next((h.version for h in mine if h.version), None),
        auth="unknown" if verdict == "identify" else verdict,
        tls=any(ex.tls for ex in exchanges if ex.answer),
        http=resp is not None,
        server=resp.header("server") if resp else None,
        title=httpmsg.title(resp.body) if resp else None,
        proves=_proves(proof),
        evidence=proof.exchange,
    )


def _proves(hit: Hit) -> str:
    text = hit.signature.proves
    if "{1}" in text:
        m = hit.signature.pattern.search(hit.exchange.text())
        text = text.replace("{1}", m.group(1) if m and m.lastindex else "")
    return text


def excerpt(data: bytes, limit: int = 300) -> str:
    """A printable excerpt: text stays text, other bytes are escaped like Python does."""
    cut = data[:limit]
    text = cut.decode("utf-8", "replace")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    out = text if text and printable / len(text) > 0.9 and "�" not in text else repr(cut)[2:-1]
    return out + ("…" if len(data) > limit else "")


def evidence_json(ex: Exchange) -> dict[str, Any]:
    return {
        "probe": ex.probe,
        "sent": excerpt(ex.sent),
        "answer": excerpt(ex.answer) if ex.answer else None,
        "error": ex.error,
        "tls": ex.tls,
        "outcome": ex.outcome,
    }
