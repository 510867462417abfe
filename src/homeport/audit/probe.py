"""The probe engine (edge): time-bounded, read-only TCP exchanges over loopback.

``fingerprint`` runs the catalogue's probes against one listener in a fixed order:
the probes hinted for its port, then an HTTP ``GET /`` (which also catches servers that
greet first, since their greeting arrives before any answer), then every other raw probe at
once, then TLS. Once something is identified, the remaining probes of that service run
to settle the auth verdict. Every connection is closed right after the first answer,
except a dialog's (the MySQL login), which lasts until its sans-IO client has a verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from homeport.audit import catalogue, httpmsg, mysql, services
from homeport.audit.catalogue import Probe
from homeport.audit.identify import Exchange, Identity, identify, match

log = logging.getLogger("homeport.audit.probe")

#: After the first bytes of a raw answer, how long to wait for the rest of it.
_IDLE_GRACE = 0.15


#: How a dialog's verdict starts when it could not conclude (timeout, unexpected bytes …).
UNCHECKED = "unchecked: "


class Dialog(Protocol):
    """A sans-IO client: fed the server's bytes, it returns what to send back.

    ``verdict()`` is None until decided, then a text whose first word is the outcome
    (``UNCHECKED`` when it could not conclude); ``closed()`` settles it at EOF.
    """

    def receive(self, data: bytes) -> bytes: ...

    def verdict(self) -> str | None: ...

    def closed(self) -> str: ...


#: ``Probe.dialog`` -> a client for the probe's argument (its ``payload``).
DIALOGS: dict[str, Callable[[bytes], Dialog]] = {
    "mysql": lambda user: mysql.Login(user.decode()),
}


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect: a loopback (or this machine's own) address and a port."""

    host: str
    port: int
    #: Local address to connect from (a non-loopback one of this host), None for any.
    source: str | None = None

    @property
    def netloc(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(slots=True)
class Prober:
    """Shared limits for one audit: per-probe timeout and a cap on open connections."""

    timeout: float = 1.0
    concurrency: int = 64
    #: Connections at once to one listener: small servers have tiny accept backlogs
    #: (Python's socketserver listens with 5) and drop the SYNs past it.
    per_target: int = 4
    _sem: asyncio.Semaphore | None = None
    _targets: dict[Target, asyncio.Semaphore] = field(default_factory=dict)

    def sem(self) -> asyncio.Semaphore:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        return self._sem

    def target_sem(self, target: Target) -> asyncio.Semaphore:
        sem = self._targets.get(target)
        if sem is None:
            sem = self._targets[target] = asyncio.Semaphore(self.per_target)
        return sem

    async def send(
        self, target: Target, probe_id: str, data: bytes, *, http: bool, tls: bool = False
    ) -> Exchange:
        """Connect, send ``data``, read the answer until complete/idle/timeout, close."""
        connected: list[bool] = []
        async with self.target_sem(target), self.sem():
            try:
                return await asyncio.wait_for(
                    self._send(target, probe_id, data, http=http, tls=tls, connected=connected),
                    self.timeout,
                )
            except TimeoutError:
                failed = "tls-failed" if tls and not connected else "timeout"
                return Exchange(probe_id, data, b"", failed, tls)
            except ConnectionRefusedError:
                return Exchange(probe_id, data, b"", "refused", tls)
            except (ssl.SSLError, ConnectionResetError, OSError) as exc:
                log.debug("probe %s on %s: %s", probe_id, target.netloc, exc)
                return Exchange(probe_id, data, b"", "reset" if not tls else "tls-failed", tls)

    async def _send(
        self,
        target: Target,
        probe_id: str,
        data: bytes,
        *,
        http: bool,
        tls: bool,
        connected: list[bool],
    ) -> Exchange:
        reader, writer = await asyncio.open_connection(
            target.host,
            target.port,
            ssl=_tls_context() if tls else None,
            server_hostname="" if tls else None,
            local_addr=(target.source, 0) if target.source else None,
        )
        connected.append(True)  # for TLS: the handshake is done
        buf = b""
        try:
            if data:
                writer.write(data)
                await writer.drain()
            buf = await _read_answer(reader, probe_id, data, http=http, tls=tls)
        except (ConnectionResetError, BrokenPipeError):
            pass  # keep what arrived: a server that answers and slams the door still answered
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        return Exchange(probe_id, data, buf, None if buf else "closed", tls)

    async def converse(self, target: Target, probe: Probe) -> Exchange:
        """Run a dialog probe to its verdict within the probe timeout; never raises."""
        dialog = DIALOGS[probe.dialog](probe.payload)
        sent: list[bytes] = []
        got: list[bytes] = []
        error: str | None = None
        async with self.target_sem(target), self.sem():
            try:
                await asyncio.wait_for(self._converse(target, dialog, sent, got), self.timeout)
                verdict = dialog.verdict() or dialog.closed()
            except TimeoutError:
                error = "timeout"
                verdict = f"{UNCHECKED}no verdict within {self.timeout:g}s"
            except OSError as exc:  # refused or reset before a verdict: not checked
                decided = dialog.verdict()
                error = None if decided else _os_error(exc)
                verdict = decided or f"{UNCHECKED}connection {error}"
        return Exchange(probe.id, b"".join(sent), b"".join(got), error, outcome=verdict)

    async def _converse(
        self, target: Target, dialog: Dialog, sent: list[bytes], got: list[bytes]
    ) -> None:
        reader, writer = await asyncio.open_connection(
            target.host,
            target.port,
            local_addr=(target.source, 0) if target.source else None,
        )
        try:
            while dialog.verdict() is None and sum(map(len, got)) < httpmsg.MAX_ANSWER:
                chunk = await reader.read(16384)
                if not chunk:
                    break
                got.append(chunk)
                out = dialog.receive(chunk)
                if out:  # the last answer (COM_QUIT) goes out too, then we close
                    sent.append(out)
                    writer.write(out)
                    await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def run(self, target: Target, probe: Probe, *, tls: bool = False) -> Exchange:
        if probe.kind == "dialog":
            return await self.converse(target, probe)
        if probe.kind == "http":
            req = httpmsg.build_request(
                probe.method, probe.path, target.netloc, probe.headers, probe.body
            )
            return await self.send(target, probe.id, req, http=True, tls=tls)
        return await self.send(target, probe.id, probe.payload, http=False, tls=tls)


async def _read_answer(
    reader: asyncio.StreamReader, probe_id: str, sent: bytes, *, http: bool, tls: bool
) -> bytes:
    buf = b""
    while len(buf) < httpmsg.MAX_ANSWER:
        try:
            chunk = await (
                reader.read(16384)
                if not buf or http
                else asyncio.wait_for(reader.read(16384), _IDLE_GRACE)
            )
        except TimeoutError:
            break
        if not chunk:
            break
        buf += chunk
        if httpmsg.looks_like_http(buf):
            if httpmsg.complete(buf):
                break
        elif match(Exchange(probe_id, sent, buf, None, tls)):
            break
    return buf


def _os_error(exc: OSError) -> str:
    return "refused" if isinstance(exc, ConnectionRefusedError) else "reset"


def _tls_context() -> ssl.SSLContext:
    # We only want to know that TLS answers and read the HTTP behind it: no verification.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass(frozen=True, slots=True)
class Fingerprint:
    identity: Identity | None
    exchanges: tuple[Exchange, ...]
    #: The listener speaks HTTP (plain or in TLS): the browser-risk checks apply.
    http: bool = False
    tls: bool = False


async def fingerprint(prober: Prober, target: Target) -> Fingerprint:
    """Identify what listens at ``target`` (see the module docstring for the order)."""
    done: list[Exchange] = []
    for p in catalogue.PROBES:
        if p.kind == "raw" and target.port in p.ports:
            done.append(await prober.run(target, p))
            if _specific(done):
                return await _settle(prober, target, done, tls=False)
    root = await prober.run(target, catalogue.probe("http-root"))
    done.append(root)
    if root.response is not None:
        if _plain_to_tls_port(root):
            tls_root = await prober.run(target, catalogue.probe("http-root"), tls=True)
            if tls_root.response is not None:
                return await _http_phase(prober, target, [*done, tls_root], tls=True)
        return await _http_phase(prober, target, done, tls=False)
    if not _specific(done):
        tried = {ex.probe for ex in done}
        rest = [p for p in catalogue.PROBES if p.kind == "raw" and p.id not in tried and p.payload]
        done += await asyncio.gather(*(prober.run(target, p) for p in rest))
    if not any(ex.answer for ex in done):
        tls_root = await prober.run(target, catalogue.probe("http-root"), tls=True)
        if tls_root.error != "tls-failed":
            done.append(tls_root)
            if tls_root.response is not None:
                return await _http_phase(prober, target, done, tls=True)
            return Fingerprint(identify(done) or _tls_identity(tls_root), tuple(done), tls=True)
    return await _settle(prober, target, done, tls=False)


def _plain_to_tls_port(root: Exchange) -> bool:
    """nginx and others answer plain HTTP on a TLS port with a 400 that says so."""
    resp = root.response
    return (
        resp is not None
        and resp.status == 400
        and re.search(rb"(?i)https|ssl|tls", resp.body) is not None
    )


def _specific(done: list[Exchange]) -> bool:
    ident = identify(done)
    return ident is not None and ident.service not in ("http", "tls")


async def _settle(
    prober: Prober, target: Target, done: list[Exchange], *, tls: bool
) -> Fingerprint:
    """Run the identified service's remaining probes, for its auth verdict."""
    ident = identify(done)
    if ident is not None:
        tried = {ex.probe for ex in done if ex.tls == tls}
        wanted = {
            s.probe
            for s in catalogue.SIGNATURES
            if s.service == ident.service and s.probe not in tried and s.probe != "*"
        }
        more = [catalogue.probe(pid) for pid in sorted(wanted)]
        done = done + list(await asyncio.gather(*(prober.run(target, p, tls=tls) for p in more)))
    return Fingerprint(identify(done), tuple(done), http=False, tls=tls)


async def _http_phase(
    prober: Prober, target: Target, done: list[Exchange], *, tls: bool
) -> Fingerprint:
    """Discovery probes gated by the ``GET /`` answer, then the identified service's own."""
    root = next(ex for ex in reversed(done) if ex.tls == tls and ex.response is not None)
    text = root.text()
    tried = {ex.probe for ex in done if ex.tls == tls and ex.response is not None}
    more = [
        p
        for p in catalogue.PROBES
        if p.kind == "http"
        and p.id not in tried
        and (target.port in p.ports or p.when is None or re.search(p.when, text, re.IGNORECASE))
    ]
    done = done + list(await asyncio.gather(*(prober.run(target, p, tls=tls) for p in more)))
    settled = await _settle(prober, target, done, tls=tls)
    return Fingerprint(settled.identity, settled.exchanges, http=True, tls=tls)


def _tls_identity(ex: Exchange) -> Identity:
    svc = services.SERVICES["tls"]
    return Identity(svc.id, svc.label, tls=True, evidence=ex)
