"""Machine facts that several commands need, read from ``/proc`` and ``/etc``.

Each reader has a pure parser beside it and a safe default for systems without the file.
"""

from __future__ import annotations

import functools
import socket
from pathlib import Path

PROC = Path("/proc")

#: A few names /etc/services may lack on minimal systems, and dev ports it never has.
_EXTRA_SERVICES: dict[int, str] = {
    1433: "ms-sql-s",
    2375: "docker",
    2376: "docker-s",
    2379: "etcd-client",
    3000: "dev-server",
    3306: "mysql",
    4200: "angular-dev",
    5000: "flask-dev",
    5173: "vite",
    5432: "postgresql",
    5601: "kibana",
    5900: "vnc",
    6006: "tensorboard",
    6379: "redis",
    6443: "kubernetes-api",
    8000: "http-alt-dev",
    8080: "http-alt",
    8443: "https-alt",
    8888: "jupyter",
    9000: "php-fpm",
    9090: "prometheus",
    9200: "elasticsearch",
    9222: "chrome-devtools",
    9229: "node-inspector",
    10250: "kubelet",
    11211: "memcache",
    11434: "ollama",
    27017: "mongodb",
    62893: "homeport",
}


def parse_port_range(text: str) -> tuple[int, int]:
    lo, hi = text.split()
    return int(lo), int(hi)


def ephemeral_range(proc: Path = PROC) -> tuple[int, int]:
    """The kernel's source-port range for ``connect()`` and ``bind(0)``."""
    try:
        return parse_port_range((proc / "sys/net/ipv4/ip_local_port_range").read_text())
    except (OSError, ValueError):
        return (32768, 60999)  # Linux's default


def unprivileged_port_start(proc: Path = PROC) -> int:
    """Ports below this need CAP_NET_BIND_SERVICE (Linux >= 4.11 makes it tunable)."""
    try:
        return int((proc / "sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return 1024


def parse_services(text: str) -> dict[tuple[int, str], str]:
    """Parse ``/etc/services``: ``name port/proto [aliases] [# comment]``."""
    out: dict[tuple[int, str], str] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or "/" not in fields[1]:
            continue
        port_s, _, proto = fields[1].partition("/")
        if port_s.isdigit():
            out.setdefault((int(port_s), proto), fields[0])
    return out


@functools.cache
def _services() -> dict[tuple[int, str], str]:
    try:
        return parse_services(Path("/etc/services").read_text(errors="replace"))
    except OSError:
        return {}


def service_name(port: int, proto: str = "tcp") -> str | None:
    """The IANA/`/etc/services` name for a port, or a well-known dev default."""
    name = _services().get((port, proto))
    if name is None:
        try:
            name = socket.getservbyport(port, proto) if not _services() else None
        except OSError:
            name = None
    return name or _EXTRA_SERVICES.get(port)
