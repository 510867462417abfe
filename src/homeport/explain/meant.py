"""Pure: "did you mean" — the listeners a user most likely meant when a connect was refused
or a name did not resolve.

Four kinds of near miss, each from facts ``facts.gather`` read (no I/O here):

- **the other loopback family**: refused on 127.0.0.1 while ``[::1]:P`` listens, or back;
- **the same service elsewhere**: the client (psql, redis-py, pymongo ...) or the port
  (5432, 6379 ...) says which service was wanted, and a listener a few ports away or on the
  service's default port answers the audit's read-only fingerprint probes as that service;
- **a dev server that moved**: servers such as Vite take the next free port when theirs is
  busy (5173 -> 5174), so a listener just above the port is offered;
- **the closest gateway route**: ``apii.localhost`` not found while a route ``api`` exists.

``ports_to_probe`` picks the few listeners worth fingerprinting (bounded), ``suggest`` ranks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from homeport.addr import ip, unmap

if TYPE_CHECKING:
    from homeport.explain.facts import Facts
    from homeport.explain.parse import Parsed

#: Client tool (rules.TOOL_NAMES keys) -> the catalogue service it talks to.
TOOL_SERVICE: dict[str, str] = {
    "psql": "postgresql",
    "mysql": "mysql",
    "redis-cli": "redis",
    "redis-py": "redis",
    "pymongo": "mongodb",
    "mongodb-node": "mongodb",
    "pymemcache": "memcached",
    "memcached": "memcached",
    "elasticsearch-py": "elasticsearch",
    "ollama": "ollama",
    "openai": "openai-compatible",
    "jdb": "jdwp",
    "intellij": "jdwp",
    "docker": "docker",
    "docker-py": "docker",
    "ssh": "ssh",
    "vite": "vite",
}
#: Service -> its default ports (the first is "the" default), as the audit catalogue hints.
DEFAULT_PORTS: dict[str, tuple[int, ...]] = {
    "postgresql": (5432,),
    "mysql": (3306,),
    "redis": (6379,),
    "mongodb": (27017,),
    "memcached": (11211,),
    "elasticsearch": (9200,),
    "ollama": (11434,),
    "openai-compatible": (8000, 1234, 11434, 8080),
    "jupyter": (8888,),
    "vite": (5173,),
    "jdwp": (5005,),
    "ssh": (22,),
    "docker": (2375,),
}
PORT_SERVICE: dict[int, str] = {ports[0]: svc for svc, ports in DEFAULT_PORTS.items()}
#: Services that are dev servers: they move to the next free port when theirs is busy.
MOVING = frozenset({"vite", "webpack-dev-server", "http", "jupyter", "django-debug"})
#: Ports dev servers start on (Vite, CRA/Next/Express, Angular, Django/uvicorn, Flask,
#: Jupyter, Astro, generic): a refusal there is worth fingerprinting the ports above it.
DEV_PORTS = frozenset({5173, 5174, 3000, 3001, 4200, 8000, 8080, 5000, 8888, 4321, 8081})
#: How far around the port to look, and how many listeners to fingerprint at most.
BELOW, ABOVE, PROBE_MAX = 10, 10, 4


@dataclass(frozen=True, slots=True)
class Candidate:
    """A loopback-reachable TCP listener near the asked port, and what it answered as."""

    host: str
    port: int
    #: The audit catalogue's service id from its fingerprint (None: not probed / unknown).
    service: str | None = None
    owner: str = ""


@dataclass(frozen=True, slots=True)
class Suggestion:
    target: str
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "why": self.why}


def wanted_service(p: Parsed) -> str | None:
    """The service the failed client meant: from the tool first, else from the port."""
    return TOOL_SERVICE.get(p.tool or "") or (PORT_SERVICE.get(p.port) if p.port else None)


def worth_fingerprinting(p: Parsed) -> bool:
    """Probe neighbours only when they can answer the question: the client says which
    service it wanted, or the port is a dev server's. Otherwise neighbours are offered
    unprobed (a random port's neighbours are other people's servers; no need to talk to them)."""
    return wanted_service(p) is not None or p.port in DEV_PORTS


def ports_to_probe(p: Parsed, listening: list[int]) -> list[int]:
    """Up to ``PROBE_MAX`` listening ports worth fingerprinting: the wanted service's default
    ports first, then the closest ones around ``p.port`` (above before below: servers move up)."""
    svc = wanted_service(p)
    defaults = [q for q in DEFAULT_PORTS.get(svc or "", ()) if q != p.port and q in listening]
    if p.port is None:  # the text names no port: only the wanted service's own ports
        return defaults[:PROBE_MAX]
    near = sorted(
        (q for q in listening if q != p.port and p.port - BELOW <= q <= p.port + ABOVE),
        key=lambda q: (abs(q - p.port), q < p.port),  # type: ignore[operator]
    )
    out: list[int] = []
    for q in [*defaults, *near]:
        if q not in out:
            out.append(q)
    return out[:PROBE_MAX]


def suggest(p: Parsed, f: Facts) -> tuple[Suggestion, ...]:
    """The near misses, most likely first."""
    out: list[Suggestion] = []
    out += _other_socket(p, f)
    out += _other_family(p, f)
    out += _same_service(p, f)
    out += _moved(p, f, {s.target for s in out})
    out += _route(p, f)
    return tuple(out)


#: Unix socket names of one service, whatever the directory or the port in the name.
_SOCKET_KINDS: tuple[tuple[str, str], ...] = (
    (".s.PGSQL.", "PostgreSQL"),
    ("mysql", "MySQL/MariaDB"),
    ("docker", "Docker"),
    ("containerd", "containerd"),
    ("podman", "Podman"),
    ("redis", "Redis"),
    ("memcached", "memcached"),
)


def _other_socket(p: Parsed, f: Facts) -> list[Suggestion]:
    """A refused Unix socket path: listening sockets with its file name elsewhere, or of
    the same service (MariaDB's /run/mysqld/mysqld.sock for a client built for /tmp/mysql.sock)."""
    if p.path is None or f.unix_listening:
        return []
    base = p.path.rsplit("/", 1)[-1]
    kind = next(((k, label) for k, label in _SOCKET_KINDS if k in p.path.lower()), None)
    out = []
    for path in f.unix_listeners:
        if path == p.path:
            continue
        if path.rsplit("/", 1)[-1] == base:
            out.append(Suggestion(path, f"a server listens on a socket named {base} there"))
        elif kind is not None and kind[0] in path.lower():
            out.append(Suggestion(path, f"{kind[1]} listens on this socket"))
    return out[:3]


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _other_family(p: Parsed, f: Facts) -> list[Suggestion]:
    a = ip(p.host) if p.host else None
    if a is None and (p.host or "").lower().rstrip(".") == "localhost":
        first = (f.resolution or f.localhost).addresses[:1]  # the family the client tried
        a = ip(first[0]) if first else None
    if a is None or not unmap(a).is_loopback or p.port is None:
        return []
    other = "::1" if unmap(a).version == 4 else "127.0.0.1"
    fam = 6 if other == "::1" else 4
    for x in f.listeners:
        if x.proto != "tcp" or x.socket.family != fam:
            continue
        bound = ip(x.address)
        if bound is not None and (bound.is_unspecified or bound.is_loopback):
            return [
                Suggestion(
                    _netloc(other, p.port),
                    f"port {p.port} listens on the other loopback family (IPv{fam}):"
                    f" {_netloc(x.address, p.port)}",
                )
            ]
    return []


def _same_service(p: Parsed, f: Facts) -> list[Suggestion]:
    svc = wanted_service(p)
    if svc is None or svc in MOVING:  # a dev server that moved: ``_moved`` says so
        return []
    defaults = DEFAULT_PORTS.get(svc, ())
    hits = [c for c in f.candidates if c.service == svc and c.port != p.port]
    hits.sort(key=lambda c: (c.port not in defaults, abs(c.port - (p.port or c.port))))
    label = _LABELS.get(svc, svc)
    return [
        Suggestion(
            _netloc(c.host, c.port),
            f"{label} answers there (fingerprinted with the audit's read-only probe)"
            + (f", {c.owner}" if c.owner else "")
            + (" — its default port" if c.port in defaults else ""),
        )
        for c in hits
    ]


def _moved(p: Parsed, f: Facts, taken: set[str]) -> list[Suggestion]:
    if p.port is None:
        return []
    out = []
    for c in sorted(f.candidates, key=lambda c: c.port):
        if not p.port < c.port <= p.port + ABOVE or _netloc(c.host, c.port) in taken:
            continue
        if c.service is not None and c.service not in MOVING:
            continue
        what = _LABELS.get(c.service or "", "a server")
        out.append(
            Suggestion(
                _netloc(c.host, c.port),
                f"{what} listens {c.port - p.port} port(s) above {p.port}"
                + (f" ({c.owner})" if c.owner else "")
                + ": dev servers move to the next free port when theirs is busy",
            )
        )
    return out[:2]


def _route(p: Parsed, f: Facts) -> list[Suggestion]:
    """Route names are full host names (``api.localhost``); compared without the suffix."""
    host = (p.host or "").lower().rstrip(".")
    if not host.endswith(".localhost") or not f.routes:
        return []
    names = {r.lower().removesuffix(".localhost"): r for r in f.routes}
    name = host.removesuffix(".localhost")
    if name in names:
        return []
    import difflib

    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return [
        Suggestion(
            f"http://{c}.localhost:{f.gateway_port}/",
            f"the gateway route closest to {host!r} is {names[c]!r}",
        )
        for c in close
    ]


_LABELS: dict[str, str] = {
    "postgresql": "PostgreSQL",
    "mysql": "MySQL/MariaDB",
    "redis": "Redis",
    "mongodb": "MongoDB",
    "memcached": "memcached",
    "elasticsearch": "Elasticsearch",
    "ollama": "Ollama",
    "openai-compatible": "an OpenAI-compatible API",
    "jupyter": "Jupyter",
    "vite": "a Vite dev server",
    "webpack-dev-server": "a webpack dev server",
    "http": "an HTTP server",
    "jdwp": "a JVM debug port (JDWP)",
    "ssh": "an SSH server",
    "docker": "the Docker API",
    "django-debug": "a Django dev server",
}
