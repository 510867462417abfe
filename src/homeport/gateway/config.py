"""The proxy's options, defined once: the daemon, the CLI and the tests all build a ``ProxyConfig``.

Defaults are what a developer on one machine wants: strict limits that no honest client reaches,
timeouts long enough for a dev server's first compile, the access log and the Host check on.
"""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Options of the gateway's data plane.

    Attributes:
        header_timeout: seconds a client has, from the first byte of a request (or from
            connecting), to finish the request head; then it is dropped (slowloris).
        keepalive_timeout: seconds an idle client connection is kept between requests.
        max_header_bytes: request line plus header block; more is answered 431 (RFC 6585 §5).
        max_control_body: request body buffered for the control API; more is answered 413.
        max_discard_body: when homeport answers a request itself (404, 401, 502 …) before its
            body arrived, up to this much body is read and thrown away so the connection can
            serve the next request (RFC 9112 §9.3); a larger body closes the connection.
        max_upstream_header_bytes: a service's response head over this is a 502 (a broken
            service must not make the gateway buffer without bound).
        connect_timeout: seconds to open a connection to an upstream.
        upstream_header_timeout: seconds an upstream has to start its response (504 after).
        upstream_idle_timeout: seconds an idle pooled upstream connection is kept.
        upstream_pool_size: idle connections kept per upstream target. Under 1,000 concurrent
            clients a cap of 64 or 256 made the pool churn (about 7,500 connects in 15 s,
            a third of the request rate); 1,024 keeps bursts pooled, and idle ones still go
            back to the service after ``upstream_idle_timeout``.
        access_log: hand an ``AccessRecord`` to the sink for every request.
        host_check: refuse Host names that are not ``*.localhost``, loopback IPs, route names
            or ``allow_hosts`` (the DNS-rebinding guard).
        gateway_names: Host names that address the gateway's own control API.
        allow_hosts: extra Host names accepted by the Host check for every route.
        https_only: answer plain-HTTP requests with a 308 to the same URL over https (the
            gateway's TLS context must be set).
        max_hops: a request that already passed through this gateway this many times is a loop
            (answered 508, RFC 5842 §7.2).
    """

    header_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    max_header_bytes: int = 64 * KIB
    max_control_body: int = 1 * MIB
    max_discard_body: int = 1 * MIB
    max_upstream_header_bytes: int = 1 * MIB
    connect_timeout: float = 5.0
    upstream_header_timeout: float = 120.0
    upstream_idle_timeout: float = 30.0
    upstream_pool_size: int = 1024
    access_log: bool = True
    host_check: bool = True
    gateway_names: tuple[str, ...] = ("homeport.localhost",)
    allow_hosts: tuple[str, ...] = ()
    max_hops: int = 4
    https_only: bool = False

    def __post_init__(self) -> None:
        if self.max_header_bytes < 1 * KIB:
            raise ValueError("max_header_bytes must be at least 1 KiB")
        if min(self.header_timeout, self.keepalive_timeout, self.connect_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if self.upstream_pool_size < 0:
            raise ValueError("upstream_pool_size must be >= 0")
