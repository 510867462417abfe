"""The seam between the gateway's data plane (proxy) and its control plane (daemon, store, CLI,
dashboard). Both sides import these records; neither imports the other's internals.

- The daemon owns the route list (SQLite) and hands the proxy a ``RouteTable`` snapshot via
  ``ProxyServer.set_routes`` whenever it changes.
- The proxy hands every finished request to ``AccessSink`` as an ``AccessRecord``; the sink must
  not block (the daemon batches them into SQLite).
- Requests for the gateway itself (Host ``homeport.localhost[:port]``, or a bare loopback IP with
  the gateway's port) go to the ``ControlApp``: the proxy buffers their body (bounded) and awaits
  ``ControlApp.handle``. A response with ``stream`` set (SSE) is written chunk by chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

AuthMode = Literal["none", "token", "basic"]


@dataclass(frozen=True, slots=True)
class Route:
    """``name`` is the full host name without port, e.g. ``api.localhost`` or, with
    ``wildcard``, the suffix it matches (``shop.localhost`` matches ``x.shop.localhost``).
    ``target`` is ``http://127.0.0.1:PORT``, ``http://[::1]:PORT``, ``http://localhost:PORT``
    or ``unix:/path``."""

    name: str
    target: str
    wildcard: bool = False
    auth: AuthMode = "none"
    #: For ``token``: the secret token; for ``basic``: ``user:password``.
    secret: str | None = None
    same_origin: bool = False
    #: Extra Host names this route accepts besides ``name`` (DNS-rebinding allowlist).
    allow_hosts: tuple[str, ...] = ()
    #: Set when homeport runs the service behind the route (``homeport run``).
    service_id: str | None = None
    #: Opt out of the default cross-site refusal (``guard.check_cross_site``).
    allow_cross_site: bool = False
    #: Origins let through the cross-site refusal, normalized (``http://web.localhost:5173``).
    allow_origins: tuple[str, ...] = ()
    #: Forward request field names containing ``_`` (dropped by default: CGI-style servers
    #: read ``X_Forwarded_For`` as ``X-Forwarded-For``; see ``http1``).
    allow_underscores: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "wildcard": self.wildcard,
            "auth": self.auth,
            "same_origin": self.same_origin,
            "allow_hosts": list(self.allow_hosts),
            "service_id": self.service_id,
            "allow_cross_site": self.allow_cross_site,
            "allow_origins": list(self.allow_origins),
            "allow_underscores": self.allow_underscores,
        }


@dataclass(frozen=True, slots=True)
class RouteTable:
    routes: tuple[Route, ...] = ()


class AccessRecord(NamedTuple):
    """One finished request, handed to the ``AccessSink``.

    A NamedTuple rather than a frozen dataclass: one is built per proxied request, and a
    frozen dataclass sets each of its 13 fields through ``object.__setattr__`` (2.0 µs against
    0.4 µs here, bench/bench_gateway_hotpath.py), while a tuple is immutable by construction.
    Serialise with ``record._asdict()`` (``dataclasses.asdict`` does not apply)."""

    time: float  # epoch seconds when the request head arrived
    client_addr: str
    client_port: int
    host: str
    method: str
    path: str
    status: int
    bytes_in: int
    bytes_out: int
    duration_ms: float
    route: str | None
    #: Why homeport answered itself (``unknown-host``, ``upstream-refused``, ``auth``,
    #: ``bad-request``, ``header-too-large``, ``loop`` …); None when the upstream answered.
    reason: str | None = None
    #: True when the client is not on loopback.
    external: bool = False
    #: The client's protocol: ``http/1.1`` (HTTP/1.0 too) or ``h2``.
    protocol: str = "http/1.1"
    #: True when the client connection is TLS (``https://``).
    tls: bool = False


AccessSink = Callable[[AccessRecord], None]


@dataclass(frozen=True, slots=True)
class ControlRequest:
    method: str
    path: str  # without the query string
    query: str
    headers: tuple[tuple[str, str], ...]  # names lower-cased, in order received
    body: bytes
    client_addr: str

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None


@dataclass(slots=True)
class ControlResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    #: For streamed responses (Server-Sent Events): chunks are written as they come,
    #: with chunked transfer encoding; the iterator ends when the stream should close.
    stream: AsyncIterator[bytes] | None = None


class ControlApp(Protocol):
    def handle(self, request: ControlRequest) -> Awaitable[ControlResponse]: ...


#: Called by the proxy when an upstream of a service route fails, to fill the 502 page:
#: returns e.g. ("exited with code 1", ["last", "log", "lines"]) or None.
ServiceStatusLookup = Callable[[str], tuple[str, list[str]] | None]
