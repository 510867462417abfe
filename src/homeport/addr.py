"""Pure classification of addresses, ports and the targets users type.

Nothing here touches the network or /proc: the few machine facts that matter
(ephemeral range, unprivileged port start) are passed in by the caller.
"""

from __future__ import annotations

import functools
import ipaddress

from homeport._record import record
from homeport.errors import UsageError

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms of every command
if TYPE_CHECKING:
    from typing import Literal

    from homeport.model import Exposure

    AddressClass = Literal[
        "loopback",
        "unspecified",
        "private",
        "link-local",
        "cgnat",
        "ula",
        "multicast",
        "public",
        "name",
    ]
    PortClass = Literal["system", "registered", "dynamic"]

_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598; also Tailscale's tailnet range
_ULA = ipaddress.ip_network("fc00::/7")  # RFC 4193
_BENCH = ipaddress.ip_network("198.18.0.0/15")  # RFC 2544 benchmarking range

AnyIP = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=4096)
def ip(text: str) -> AnyIP | None:
    """Parse an IP literal (brackets and a ``%scope`` allowed); None for a name.

    Cached: the same few addresses come back for every socket, and ``ipaddress`` costs
    ~10 µs a parse (doctor with 2,000 listeners parsed 15,000 of them)."""
    text = text.strip().removeprefix("[").removesuffix("]")
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def unmap(addr: AnyIP) -> AnyIP:
    """``::ffff:127.0.0.1`` is 127.0.0.1 for every purpose here."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


# Pure on its text, and a machine has few distinct bind addresses: 2,000 listeners cost
# 2,000 ipaddress parses (8 ms) without the cache.
@functools.lru_cache(maxsize=4096)
def address_class(text: str) -> AddressClass:
    """Classify an address the way a developer needs it (not the way IANA files it)."""
    a = ip(text)
    if a is None:
        return "name"
    a = unmap(a)
    if a.is_unspecified:
        return "unspecified"
    if a.is_loopback:
        return "loopback"
    if a.is_multicast:
        return "multicast"
    if a.is_link_local:
        return "link-local"
    if isinstance(a, ipaddress.IPv4Address) and a in _CGNAT:
        return "cgnat"
    if isinstance(a, ipaddress.IPv6Address) and a in _ULA:
        return "ula"
    if a.is_private or (isinstance(a, ipaddress.IPv4Address) and a in _BENCH):
        return "private"
    return "public"


def exposure(bind_addr: str) -> Exposure:
    """Who can reach a socket bound to ``bind_addr``, before any firewall."""
    cls = address_class(bind_addr)
    if cls == "loopback":
        return "loopback"
    if cls == "unspecified":
        return "all-interfaces"
    if cls in ("private", "link-local", "cgnat", "ula"):
        return "lan"
    return "public"


def is_loopback(text: str) -> bool:
    return address_class(text) == "loopback"


def port_class(port: int) -> PortClass:
    """IANA's three ranges (RFC 6335 §6)."""
    if port < 1024:
        return "system"
    if port < 49152:
        return "registered"
    return "dynamic"


def needs_privilege(port: int, unprivileged_start: int = 1024) -> bool:
    """Whether binding ``port`` needs CAP_NET_BIND_SERVICE on this system."""
    return 0 < port < unprivileged_start


def in_range(port: int, bounds: tuple[int, int]) -> bool:
    return bounds[0] <= port <= bounds[1]


def check_port(value: int | str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"not a port number: {value!r} (accepted: 1-65535)") from None
    if not 0 < port < 65536:
        raise UsageError(f"port out of range: {port} (accepted: 1-65535)")
    return port


@record
class Target:
    """What a user typed to name a place: ``3000``, ``host:port``, ``[v6]:port``, a URL."""

    host: str | None
    port: int
    scheme: str | None = None
    path: str = ""

    @property
    def display(self) -> str:
        if self.host is None:
            return f":{self.port}"
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"{h}:{self.port}"


_DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "ws": 80,
    "wss": 443,
    "postgres": 5432,
    "postgresql": 5432,
    "redis": 6379,
    "mysql": 3306,
    "mongodb": 27017,
}


def parse_target(text: str) -> Target:
    """Parse ``PORT``, ``:PORT``, ``host:port``, ``[v6]:port`` or a URL.

    Raises UsageError with the accepted forms when ``text`` is none of them.
    """
    raw = text.strip()
    accepted = "accepted: PORT, HOST:PORT, [IPv6]:PORT or a URL such as http://localhost:3000"
    if not raw:
        raise UsageError(f"empty target ({accepted})")
    if raw.isdigit() or (raw.startswith(":") and raw[1:].isdigit()):
        return Target(None, _port(raw.lstrip(":"), raw, accepted))
    if "://" in raw:
        return _parse_url(raw, accepted)
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or not rest.startswith(":") or ip(host) is None:
            raise UsageError(f"cannot read {raw!r} as [IPv6]:PORT ({accepted})")
        return Target(host, _port(rest[1:], raw, accepted))
    if raw.count(":") > 1:
        if ip(raw) is not None:
            raise UsageError(f"{raw!r} is an IPv6 address without a port; write [{raw}]:PORT")
        raise UsageError(f"cannot read {raw!r} ({accepted})")
    host, sep, port = raw.rpartition(":")
    if not sep or not host:
        raise UsageError(f"{raw!r} has no port ({accepted})")
    return Target(host, _port(port, raw, accepted))


def _port(text: str, raw: str, accepted: str) -> int:
    if not text.isdigit():
        raise UsageError(f"cannot read a port in {raw!r} ({accepted})")
    port = int(text)
    if not 0 < port < 65536:
        raise UsageError(f"port {port} in {raw!r} is out of range (1-65535)")
    return port


def _parse_url(raw: str, accepted: str) -> Target:
    try:
        from urllib.parse import urlsplit  # only URLs need it: ~2 ms of every start

        u = urlsplit(raw)
        port = u.port
    except ValueError as exc:
        raise UsageError(f"cannot read URL {raw!r}: {exc}") from None
    if not u.hostname:
        raise UsageError(f"URL {raw!r} has no host ({accepted})")
    if port is None:
        port = _DEFAULT_PORTS.get(u.scheme.lower())
        if port is None:
            raise UsageError(f"URL {raw!r} has no port and {u.scheme}: has no default")
    return Target(u.hostname, port, scheme=u.scheme.lower(), path=u.path or "/")


def http_url(host: str, port: int, scheme: str = "http") -> str:
    """``http://host:port``, without the port when it is the scheme's default (RFC 3986
    §6.2.3): ``http://api.localhost`` once the gateway owns port 80 (issue 15)."""
    default = _DEFAULT_PORTS.get(scheme)
    return f"{scheme}://{host}" if port == default else f"{scheme}://{host}:{port}"
