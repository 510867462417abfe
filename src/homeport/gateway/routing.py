"""Pure routing: a ``Host`` value -> what the gateway does with the request.

- ``homeport.localhost`` (the gateway names), or a bare loopback IP / ``localhost`` / an
  ``allow_hosts`` name with the gateway's own port -> the control API.
- A route's exact name or one of its ``allow_hosts`` -> that route; else the longest wildcard
  suffix (``*.shop.localhost`` matches ``a.shop.localhost`` and ``b.a.shop.localhost``).
- Anything else -> ``unknown`` (a 404 page listing the routes) when the name is one a browser
  only sends for this machine, or ``foreign`` when the Host check is on and it is not: a page on
  ``evil.example`` whose DNS now answers 127.0.0.1 (DNS rebinding) sends ``Host: evil.example``,
  and that must never reach a local service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from homeport.addr import ip, is_loopback
from homeport.gateway.contract import Route, RouteTable
from homeport.gateway.http1 import split_host

DecisionKind = Literal["route", "control", "unknown", "foreign", "bad-host", "bad-target"]

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_~:[]%")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a route's requests go. ``hosts`` are tried in order (``localhost`` -> both
    families); ``path`` is set for a Unix socket. ``key`` names the upstream pool."""

    key: str
    hosts: tuple[str, ...] = ()
    port: int = 0
    path: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    kind: DecisionKind
    hostname: str = ""
    route: Route | None = None
    target: Target | None = None
    #: The target is the gateway's own address (set by the server, which knows it).
    loops: bool = False


def parse_target(text: str) -> Target:
    """``http://127.0.0.1:PORT``, ``http://[::1]:PORT``, ``http://localhost:PORT``,
    ``HOST:PORT`` or ``unix:/path`` -> Target. Only loopback hosts are accepted: the gateway
    never forwards off this machine. Raises ValueError with what is accepted."""
    if text.startswith("unix:"):
        path = text[5:]
        if not path.startswith("/"):
            raise ValueError(f"{text!r}: a Unix socket target is unix:/absolute/path")
        return Target(key=text, path=path)
    rest = text.removeprefix("http://")
    rest = rest.split("/", 1)[0]
    try:
        host, port = split_host(rest)
    except ValueError:
        raise ValueError(f"{text!r}: expected http://HOST:PORT or unix:/path") from None
    if port is None:
        raise ValueError(f"{text!r}: the target needs a port")
    if host == "localhost":
        hosts: tuple[str, ...] = ("127.0.0.1", "::1")
    elif ip(host) is not None and is_loopback(host):
        hosts = (host,)
    else:
        raise ValueError(f"{text!r}: targets must be on loopback (127.0.0.0/8, ::1, localhost)")
    return Target(key=f"{host}:{port}", hosts=hosts, port=port)


def is_local_name(hostname: str) -> bool:
    """Names that only ever mean this machine: ``localhost``, ``*.localhost`` (RFC 6761 §6.3),
    loopback IP literals."""
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    return ip(hostname) is not None and is_loopback(hostname)


class Router:
    """An immutable snapshot of the route table, indexed for lookups by Host."""

    def __init__(
        self,
        table: RouteTable,
        *,
        gateway_names: tuple[str, ...] = ("homeport.localhost",),
        allow_hosts: tuple[str, ...] = (),
        host_check: bool = True,
    ) -> None:
        self.table = table
        self.host_check = host_check
        self._gateway = frozenset(n.lower() for n in gateway_names)
        self._allow = frozenset(n.lower() for n in allow_hosts)
        self._exact: dict[str, Route] = {}
        wild: list[tuple[str, Route]] = []
        for route in table.routes:
            name = route.name.lower().removeprefix("*.").rstrip(".")
            if route.wildcard:
                wild.append(("." + name, route))
            else:
                self._exact.setdefault(name, route)
            for alias in route.allow_hosts:
                self._exact.setdefault(alias.lower().rstrip("."), route)
        # Longest suffix first: *.a.shop.localhost wins over *.shop.localhost.
        self._wild = sorted(wild, key=lambda w: len(w[0]), reverse=True)
        self._targets: dict[str, Target | None] = {}

    def lookup(self, hostname: str) -> Route | None:
        route = self._exact.get(hostname)
        if route is not None:
            return route
        for suffix, wroute in self._wild:
            if hostname.endswith(suffix):
                return wroute
        return None

    def decide(self, host: str, local_port: int) -> Decision:
        """What to do with a request whose Host field is ``host`` arriving on ``local_port``."""
        if not host or not set(host) <= _HOST_CHARS:
            return Decision("bad-host")
        try:
            hostname, port = split_host(host)
        except ValueError:
            return Decision("bad-host")
        if hostname in self._gateway:
            return Decision("control", hostname)
        route = self.lookup(hostname)
        if route is not None:
            target = self._target(route)
            kind: DecisionKind = "route" if target is not None else "bad-target"
            return Decision(kind, hostname, route, target)
        loopback = hostname == "localhost" or (ip(hostname) is not None and is_loopback(hostname))
        # An address the user exposed the gateway on (``allow_hosts``) is its home there too.
        home = loopback or hostname in self._allow
        if home and (port is None or port == local_port):
            return Decision("control", hostname)
        if self.host_check and not (is_local_name(hostname) or hostname in self._allow):
            return Decision("foreign", hostname)
        return Decision("unknown", hostname)

    def _target(self, route: Route) -> Target | None:
        if route.target not in self._targets:
            try:
                self._targets[route.target] = parse_target(route.target)
            except ValueError:
                self._targets[route.target] = None
        return self._targets[route.target]


def points_at(target: Target, bound: list[tuple[str, int]]) -> bool:
    """True when ``target`` is one of the gateway's own listening addresses (a direct loop)."""
    if target.path is not None:
        return False
    for addr, port in bound:
        if port == target.port and (addr in target.hosts or addr in ("0.0.0.0", "::")):
            return True
    return False
