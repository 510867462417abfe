"""Pure: the situations of the connection-level kinds — reset, connect-denied, unreachable.

``diagnose`` calls the three choosers below through its table, adds ``template_vars`` to
its own, ``notes`` beside its notes, and ``live_lines`` after the descriptive ones. Every
decision reads ``Parsed`` and ``Facts`` only (the probes ran in ``facts.gather``).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import PurePath

from homeport.addr import address_class
from homeport.explain.facts import Facts
from homeport.explain.parse import Parsed
from homeport.explain.sections import host_port, serves
from homeport.model import Listener

#: Owner process names that forward connections elsewhere: a reset may come from behind them.
PROXIES = frozenset(
    {
        "nginx",
        "haproxy",
        "envoy",
        "caddy",
        "traefik",
        "docker-proxy",
        "rootlessport",
        "socat",
        "ssh",
        "sshd",
        "kubectl",
        "slirp4netns",
        "pasta",
    }
)
#: Clients that pool keep-alive connections by default (requests/urllib3, httpx, Node's
#: agent and undici, Go's Transport): the idle-close race is theirs.
KEEPALIVE_TOOLS = frozenset({"python-requests", "python-httpx", "node", "go"})
#: Without a time in the error, an owner younger than this may have restarted since.
RECENT_S = 600.0

#: Where tools print the Unix socket path of a denied connect() (Node, curl -v, libpq,
#: redis-cli, Go's dial unix).
_UNIX_PATH = re.compile(
    r"connect (?:EACCES|EPERM) (?P<a>/\S+)|Immediate connect fail for (?P<b>/\S+?): "
    r"|on socket \"(?P<c>/[^\"]+)\"|Could not connect to Redis at (?P<d>/\S+?): "
    r"|dial unix (?P<e>/\S+?): "
)

_TIME = re.compile(
    r"(?P<date>\d{4}-\d\d-\d\d)[T ](?P<time>\d\d:\d\d:\d\d)(?:[.,]\d+)?"
    r"(?P<tz>Z|[+-]\d\d:?\d\d)?"
)


# ------------------------------------------------------------------ situations


def reset_situation(p: Parsed, f: Facts, dests: tuple[str, ...], serving: tuple[str, ...]) -> str:
    if p.port is None:
        return "reset.no-port"
    served = serving_listeners(f, dests)
    if not served:
        return "reset.gone"
    if any(is_gateway(x, f.gateway_port) for x in served):
        return "reset.gateway"
    if any(o.name in PROXIES for x in served for o in x.owners):
        return "reset.proxy"
    if f.tls:
        return "reset.tls"
    started, when = newest_start(served), error_time(p.text)
    if started is not None and when is not None and started > when:
        return "reset.restarted"  # the error's own timestamp proves it
    if started is not None and when is None and f.now - started < RECENT_S:
        return "reset.recent"
    if f.close_wait:
        return "reset.keepalive"  # live evidence: the client still holds what the server closed
    return "reset.listening"


def denied_situation(p: Parsed, f: Facts, dests: tuple[str, ...], serving: tuple[str, ...]) -> str:
    if unix_path(p.text):
        return "connect-denied.unix-socket"
    if f.bpf_hooks:
        return "connect-denied.bpf"
    if f.security:
        return "connect-denied.security"
    if f.firewall_lo:
        return "connect-denied.firewall"
    return "connect-denied.sandbox"


def unreachable_situation(
    p: Parsed, f: Facts, dests: tuple[str, ...], serving: tuple[str, ...]
) -> str:
    if p.host is None:
        return "unreachable.no-address"
    if any(address_class(d) in ("loopback", "unspecified") for d in dests):
        return "unreachable.firewall" if f.firewall_reject else "unreachable.loopback"
    return "unreachable.remote"


def notes(p: Parsed, sid: str) -> tuple[str, ...]:
    if p.tool in KEEPALIVE_TOOLS and sid in ("reset.listening", "reset.gateway", "reset.recent"):
        return ("note.keepalive",)
    return ()


# ------------------------------------------------------------------ facts, read


def serving_listeners(f: Facts, dests: tuple[str, ...]) -> list[Listener]:
    tcp = [x for x in f.listeners if x.proto == "tcp"]
    return [x for x in tcp if any(serves(x.socket, d) for d in dests)]


def is_gateway(x: Listener, gateway_port: int) -> bool:
    """homeport's own gateway: its port, or an owner running ``homeport up``."""
    if x.port == gateway_port:
        return True
    return any(
        "up" in o.cmdline and any(PurePath(w).name == "homeport" for w in o.cmdline)
        for o in x.owners
    )


def newest_start(listeners: list[Listener]) -> float | None:
    starts = [o.start_time for x in listeners for o in x.owners if o.start_time is not None]
    return max(starts) if starts else None


def unix_path(text: str) -> str | None:
    """The Unix socket path a denied connect() names, if the text says."""
    m = _UNIX_PATH.search(text)
    return next((v for v in m.groupdict().values() if v), None) if m else None


def error_time(text: str) -> float | None:
    """The first ISO-8601-like timestamp in the text (log lines), as epoch seconds; a time
    without a zone is local time, as loggers print it."""
    m = _TIME.search(text)
    if m is None:
        return None
    tz = m.group("tz") or ""
    stamp = f"{m.group('date')}T{m.group('time')}{'+00:00' if tz == 'Z' else tz}"
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def ago(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} s ago"
    if s < 7200:
        return f"{s // 60} min ago"
    if s < 172800:
        return f"{s // 3600} h ago"
    return f"{s // 86400} days ago"


# ------------------------------------------------------------------ text


def template_vars(p: Parsed, f: Facts, dests: tuple[str, ...]) -> dict[str, str]:
    served = serving_listeners(f, dests) or [x for x in f.listeners if x.proto == "tcp"]
    started = newest_start(served)
    return {
        "started": ago(f.now - started) if started is not None else "at an unknown time",
        "bpf": "; ".join(f.bpf_hooks) or f.bpf_note or "none attached",
        "security": "; ".join(f.security) or "none enforcing",
        "landlock": f"Landlock ABI {f.landlock} available" if f.landlock else "no Landlock",
        "path": p.path or unix_path(p.text) or "the socket",
        "socket": f.unix_socket or "not examined",
        "close_wait": "; ".join(f.close_wait) or "none",
        "close_wait_count": str(len(f.close_wait)),
        "rejects": "; ".join(f.firewall_reject) or "none",
    }


def address_lines(p: Parsed) -> tuple[str, ...] | None:
    """The address section for a Unix socket path (None: the usual IP/name section)."""
    path = unix_path(p.text) if p.kind == "connect-denied" else p.path
    if path is None:
        return None
    return (f"{path}: a Unix socket, a file in the file system: no IP address or port",)


def live_lines(p: Parsed, f: Facts, dests: tuple[str, ...]) -> tuple[str, ...]:
    """What the connection-level probes found, for the "live now" section."""
    out: list[str] = []
    if p.kind == "reset":
        started = newest_start(serving_listeners(f, dests))
        if started is not None:
            out.append(f"its owner started {ago(f.now - started)}")
        when = error_time(p.text)
        if when is not None:
            out.append(f"the error text is stamped {ago(f.now - when)}")
        out.extend(
            f"client connection in CLOSE-WAIT (closed by the server): {c}" for c in f.close_wait
        )
        probed = [d for d in dests if any(serves(x.socket, d) for x in f.listeners)]
        if f.tls is not None and p.port is not None and probed:
            says = "answers" if f.tls else "does not answer"
            out.append(f"{host_port(probed[0], p.port)} {says} a TLS ClientHello")
    if p.kind == "connect-denied" and f.unix_socket:
        out.append(f"{unix_path(p.text)}: {f.unix_socket}")
    if p.kind == "connect-denied":
        out.append(f"cgroup BPF connect hooks: {'; '.join(f.bpf_hooks) or 'none'}")
        if f.bpf_note:
            out.append(f"cgroup BPF: {f.bpf_note}")
        out.append(f"security modules enforcing: {'; '.join(f.security) or 'none'}")
        out.append(f"Landlock: {f'ABI {f.landlock}' if f.landlock else 'not available'}")
    return tuple(out)
