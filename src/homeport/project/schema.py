"""The project file's records and the one table of keys each level accepts (pure).

Every key a table accepts is a row of ``PROJECT_KEYS`` / ``SERVICE_KEYS`` / ``READY_KEYS`` /
``RESTART_KEYS`` / ``ROUTE_KEYS`` with the text that says what it takes; an unknown key is an
error that names it and lists the accepted ones. A new option (a leased ``address``, a route's
``allow_origin``) is one row here plus one field on the record that carries it.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from homeport.project.errors import ProjectError

Kind = Literal["service", "task"]
Condition = Literal["started", "ready", "completed"]
Policy = Literal["no", "on-failure", "always"]
ProbeKind = Literal["tcp", "http", "exec", "log", "started", "completed"]

CONDITIONS: tuple[Condition, ...] = ("started", "ready", "completed")
POLICIES: tuple[Policy, ...] = ("no", "on-failure", "always")

#: A service or project name becomes a DNS label of its route (RFC 1123 §2.1).
LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

TOP_KEYS: dict[str, str] = {
    "project": "a table: name",
    "services": "a table of services, [services.NAME]",
    "profiles": "a table of profiles, [profiles.NAME], each overriding parts of the file",
}
PROJECT_KEYS: dict[str, str] = {
    "name": "a name of letters, digits and '-' (routes become SERVICE.NAME.localhost)",
}
SERVICE_KEYS: dict[str, str] = {
    "cmd": 'a command line run by /bin/sh, e.g. "python -m http.server $PORT"',
    "args": 'a list of arguments run without a shell, e.g. ["python", "app.py"]',
    "cwd": "a folder, relative to the project root (default: the root)",
    "port": '1-65535 (fixed), "auto" (a free leased port, the default) or false (none)',
    "ready": 'a table with one of tcp = true, http = "/path", exec = "cmd", log = "regex"'
    " (+ status, contains, interval, timeout, retries, deadline), or false",
    "route": "true (the default when it has a port), false, or a table: name",
    "env": 'a table of NAME = "value" (${NAME.port}, ${NAME.url}, ${NAME.host}, ${env.VAR})',
    "env_file": "a dotenv file or a list of them, relative to the project root",
    "depends_on": 'a list of services, or a table NAME = "started" | "ready" | "completed"',
    "kind": '"service" (the default) or "task" (runs to completion)',
    "restart": '"no" | "on-failure" | "always", or a table: policy, backoff, backoff_max, max',
    "stop_signal": 'a signal name or number, e.g. "SIGINT" (default SIGTERM)',
    "stop_timeout": "seconds between stop_signal and SIGKILL (default 10)",
    "address": '"auto" (its own leased loopback address 127.0.x.y, so it keeps its default'
    " port beside other copies) or an address in 127.0.0.0/8",
}
READY_KEYS: dict[str, str] = {
    "tcp": "true: something accepts on the service's port (or a port number)",
    "http": 'a path, e.g. "/health": a GET answers with an accepted status',
    "exec": "a command line whose exit status 0 means ready",
    "log": "a regular expression matched against the service's output lines",
    "status": "an HTTP status or [low, high] (default [200, 399])",
    "contains": "text the HTTP body must contain",
    "interval": "seconds between attempts at most (default 0.25; the first come sooner)",
    "timeout": "seconds one attempt may take (default 2)",
    "retries": "failed attempts, one per interval, before the service counts as failed"
    " (default: until the deadline)",
    "deadline": "seconds from start before the service counts as failed (default 60)",
}
RESTART_KEYS: dict[str, str] = {
    "policy": '"no" | "on-failure" | "always"',
    "backoff": "seconds before the first restart, doubling each time (default 1)",
    "backoff_max": "the most seconds between restarts (default 30)",
    "max": "restarts in a row before the service is left in a crash loop (default 5)",
}
ROUTE_KEYS: dict[str, str] = {
    "name": "the route's first label instead of the service name",
    "allow_cross_site": "true: let pages of other sites write to it (off: refused, issue 16)",
    "allow_origin": 'an origin or a list, e.g. "http://localhost:5173": let those write to it',
}
PROBES: tuple[str, ...] = ("tcp", "http", "exec", "log")


@dataclass(frozen=True, slots=True)
class ReadySpec:
    """How a service proves it is ready. ``started``: as soon as it runs; ``completed``: a
    task that exited 0."""

    kind: ProbeKind
    port: int | None = None  # tcp on another port than the service's
    path: str | None = None
    status: tuple[int, int] = (200, 399)
    contains: str | None = None
    command: str | None = None
    pattern: str | None = None
    interval: float = 0.25
    timeout: float = 2.0
    retries: int | None = None
    deadline: float = 60.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for key in ("port", "path", "contains", "command", "pattern", "retries"):
            if (value := getattr(self, key)) is not None:
                out[key] = value
        if self.kind == "http":
            out["status"] = list(self.status)
        if self.kind in PROBES:
            out |= {"interval": self.interval, "timeout": self.timeout, "deadline": self.deadline}
        return out


@dataclass(frozen=True, slots=True)
class RestartSpec:
    policy: Policy = "no"
    backoff: float = 1.0
    backoff_max: float = 30.0
    max: int = 5

    def delay(self, failures: int) -> float:
        """Seconds before restart number ``failures`` (1-based): backoff doubling to the cap."""
        return float(min(self.backoff_max, self.backoff * 2 ** max(0, failures - 1)))

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "backoff": self.backoff,
            "backoff_max": self.backoff_max,
            "max": self.max,
        }


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """Whether the gateway names the service, and how. Route options (auth, cross-site keys)
    join here as fields with a row each in ``ROUTE_KEYS``."""

    enabled: bool = True
    name: str | None = None
    allow_cross_site: bool = False
    allow_origins: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "name": self.name,
            "allow_cross_site": self.allow_cross_site,
            "allow_origins": list(self.allow_origins),
        }


@dataclass(frozen=True, slots=True)
class Dependency:
    name: str
    condition: Condition

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "condition": self.condition}


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One ``[services.NAME]`` table, validated; ``${...}`` references still unresolved."""

    name: str
    kind: Kind = "service"
    cmd: str | None = None
    args: tuple[str, ...] | None = None
    cwd: str = "."
    port: int | Literal["auto"] | None = "auto"
    ready: ReadySpec = field(default_factory=lambda: ReadySpec("tcp"))
    route: RouteSpec = field(default_factory=RouteSpec)
    env: tuple[tuple[str, str], ...] = ()
    env_file: tuple[str, ...] = ()
    depends_on: tuple[Dependency, ...] = ()
    restart: RestartSpec = field(default_factory=RestartSpec)
    stop_signal: int = int(signal.SIGTERM)
    stop_timeout: float = 10.0
    #: ``"auto"`` (a leased 127.0.x.y) or a fixed 127/8 address; None: 127.0.0.1 as usual.
    address: str | None = None

    @property
    def routed(self) -> bool:
        return self.route.enabled and self.port is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "cmd": self.cmd,
            "args": None if self.args is None else list(self.args),
            "cwd": self.cwd,
            "port": self.port,
            "ready": self.ready.to_json(),
            "route": self.route.to_json(),
            "env": dict(self.env),
            "env_file": list(self.env_file),
            "depends_on": [d.to_json() for d in self.depends_on],
            "restart": self.restart.to_json(),
            "stop_signal": signal.Signals(self.stop_signal).name,
            "stop_timeout": self.stop_timeout,
            "address": self.address,
        }


# -- parsing one table ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class At:
    """Where a value sits: the file and its key path; errors raised here name both.
    ``origins`` maps a key path a profile set to the profile's name, so an error in a value
    the profile gave names ``profiles.NAME.…``."""

    file: Path
    path: tuple[str, ...] = ()
    origins: Mapping[tuple[str, ...], str] = field(default_factory=dict)

    def __truediv__(self, key: str) -> At:
        return At(self.file, (*self.path, key), self.origins)

    @property
    def key(self) -> str:
        for n in range(len(self.path), 0, -1):
            profile = self.origins.get(self.path[:n])
            if profile is not None:
                return ".".join(("profiles", profile, *self.path))
        return ".".join(self.path)

    def error(self, problem: str, hint: str | None = None) -> ProjectError:
        return ProjectError(self.file, self.key, problem, hint=hint)


def check_keys(table: Mapping[str, Any], accepted: Mapping[str, str], at: At) -> None:
    for key in table:
        if key not in accepted:
            raise (at / key).error(
                f"unknown key {key!r}", hint="accepted: " + ", ".join(sorted(accepted))
            )


def want_table(value: Any, at: At, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise at.error(f"must be a table ({what}), not {_kind(value)}")
    return value


def label(value: Any, at: At) -> str:
    if not isinstance(value, str) or not LABEL.match(value):
        raise at.error(
            f"{value!r} is not a name: use lower-case letters, digits and '-' (it becomes a"
            " DNS label)"
        )
    return value


def number(value: Any, at: At, *, lo: float = 0.0, hi: float = 86400.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo < value <= hi:
        raise at.error(f"must be a number of seconds above {lo:g} (up to {hi:g}), not {value!r}")
    return float(value)


def count(value: Any, at: At) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise at.error(f"must be a whole number >= 0, not {value!r}")
    return value


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)  # fmt: skip


def parse_service(name: str, raw: Any, at: At, kinds: Mapping[str, Any]) -> ServiceSpec:
    """A ``[services.NAME]`` table; ``kinds`` (NAME -> the raw ``kind`` of every service)
    gives a listed dependency its default condition: ``completed`` for a task, else
    ``ready``."""
    label(name, at)
    table = want_table(raw, at, "cmd, port, ready …")
    check_keys(table, SERVICE_KEYS, at)
    kind = _service_kind(table.get("kind", "service"), at / "kind")
    cmd, args = _command(table, at)
    port = _port(table["port"], at / "port") if "port" in table else _default_port(kind)
    ready = (
        parse_ready(table["ready"], at / "ready") if "ready" in table else default_ready(kind, port)
    )
    if ready.kind == "tcp" and port is None and ready.port is None:
        raise (at / "ready" / "tcp").error(
            "the service has no port to probe", hint="give it a port, or tcp = PORT"
        )
    return ServiceSpec(
        name=name,
        kind=kind,
        cmd=cmd,
        args=args,
        cwd=_string(table.get("cwd", "."), at / "cwd"),
        port=port,
        ready=ready,
        route=_route(table.get("route", True), at / "route"),
        env=_env(table.get("env", {}), at / "env"),
        env_file=_env_files(table.get("env_file", ()), at / "env_file"),
        depends_on=_depends(table.get("depends_on", ()), at / "depends_on", kinds),
        restart=parse_restart(table.get("restart", "no"), at / "restart"),
        stop_signal=_signal(table.get("stop_signal", "SIGTERM"), at / "stop_signal"),
        stop_timeout=number(table.get("stop_timeout", 10.0), at / "stop_timeout"),
        address=_address(table["address"], at / "address") if "address" in table else None,
    )


def _address(value: Any, at: At) -> str:
    """``address = "auto"`` or a loopback IPv4 address (127/8 routes to lo on Linux)."""
    import ipaddress

    if value == "auto":
        return "auto"
    try:
        addr = ipaddress.IPv4Address(value) if isinstance(value, str) else None
    except ValueError:
        addr = None
    if addr is None or not addr.is_loopback:
        raise at.error(
            f'must be "auto" or an IPv4 address in 127.0.0.0/8, not {value!r}',
            hint="IPv6 has only ::1 on lo: a service of its own gets a 127.0.x.y address",
        )
    return str(addr)


def _service_kind(value: Any, at: At) -> Kind:
    if value not in ("service", "task"):
        raise at.error(f'must be "service" or "task", not {value!r}')
    return "task" if value == "task" else "service"


def _default_port(kind: Kind) -> int | Literal["auto"] | None:
    return None if kind == "task" else "auto"


def default_ready(kind: Kind, port: int | Literal["auto"] | None) -> ReadySpec:
    """A task is ready once it completed; a service with a port once its port accepts."""
    if kind == "task":
        return ReadySpec("completed")
    return ReadySpec("tcp") if port is not None else ReadySpec("started")


def _command(table: Mapping[str, Any], at: At) -> tuple[str | None, tuple[str, ...] | None]:
    if "cmd" in table and "args" in table:
        raise (at / "args").error("give cmd or args, not both")
    if "cmd" in table:
        cmd = table["cmd"]
        if not isinstance(cmd, str) or not cmd.strip():
            raise (at / "cmd").error(f"must be a command line (a non-empty string), not {cmd!r}")
        return cmd, None
    if "args" in table:
        args = table["args"]
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            raise (at / "args").error(f"must be a non-empty list of strings, not {args!r}")
        return None, tuple(args)
    raise (at / "cmd").error("missing: every service needs cmd (a command line) or args")


def _port(value: Any, at: At) -> int | Literal["auto"] | None:
    if value is False:
        return None
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise at.error(f'must be 1-65535, "auto" or false, not {value!r}')
    return value


def _string(value: Any, at: At) -> str:
    if not isinstance(value, str) or not value:
        raise at.error(f"must be a non-empty string, not {value!r}")
    return value


def _route(value: Any, at: At) -> RouteSpec:
    if isinstance(value, bool):
        return RouteSpec(enabled=value)
    table = want_table(value, at, "true, false or a table: name, allow_cross_site, allow_origin")
    check_keys(table, ROUTE_KEYS, at)
    name = label(table["name"], at / "name") if "name" in table else None
    cross = table.get("allow_cross_site", False)
    if not isinstance(cross, bool):
        raise (at / "allow_cross_site").error(f"must be true or false, not {cross!r}")
    return RouteSpec(
        True, name, cross, _origins(table.get("allow_origin", []), at / "allow_origin")
    )


def _origins(value: Any, at: At) -> tuple[str, ...]:
    from homeport.daemon.routes import normalize_origins
    from homeport.errors import UsageError

    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise at.error(f"must be an origin or a list of origins, not {value!r}")
    try:
        return tuple(normalize_origins(items))
    except UsageError as exc:
        raise at.error(exc.message) from None


def _scalar_text(value: Any, at: At) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise at.error(f"must be a string or a number, not {_kind(value)}")


def _env(value: Any, at: At) -> tuple[tuple[str, str], ...]:
    table = want_table(value, at, 'NAME = "value"')
    out = []
    for key, v in table.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise (at / key).error("is not an environment variable name")
        out.append((key, _scalar_text(v, at / key)))
    return tuple(out)


def _env_files(value: Any, at: At) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(x, str) and x for x in items):
        raise at.error(f"must be a file name or a list of them, not {value!r}")
    return tuple(items)


def _depends(value: Any, at: At, kinds: Mapping[str, Any]) -> tuple[Dependency, ...]:
    if isinstance(value, list | tuple):
        names = [label(v, at / str(i)) for i, v in enumerate(value)]
        return tuple(
            Dependency(n, "completed" if kinds.get(n) == "task" else "ready") for n in names
        )
    table = want_table(value, at, 'a list of names or NAME = "ready"')
    out = []
    for name, cond in table.items():
        label(name, at / name)
        if cond not in CONDITIONS:
            raise (at / name).error(
                f"must be one of {', '.join(repr(c) for c in CONDITIONS)}, not {cond!r}"
            )
        out.append(Dependency(name, cond))
    return tuple(out)


def parse_ready(value: Any, at: At) -> ReadySpec:
    if value is False:
        return ReadySpec("started")
    table = want_table(value, at, 'tcp = true, http = "/path", exec = "cmd" or log = "re"')
    check_keys(table, READY_KEYS, at)
    probes = [k for k in PROBES if k in table]
    if len(probes) != 1:
        raise at.error(
            "needs exactly one of tcp, http, exec, log"
            + (f" (found {', '.join(probes)})" if probes else "")
        )
    kind = probes[0]
    common: dict[str, Any] = {
        "interval": number(table.get("interval", 0.25), at / "interval"),
        "timeout": number(table.get("timeout", 2.0), at / "timeout"),
        "deadline": number(table.get("deadline", 60.0), at / "deadline"),
        "retries": count(table["retries"], at / "retries") if "retries" in table else None,
    }
    for key in ("status", "contains"):
        if key in table and kind != "http":
            raise (at / key).error("applies to http readiness only")
    v = table[kind]
    if kind == "tcp":
        if v is True:
            return ReadySpec("tcp", **common)
        port = _port(v, at / "tcp")
        if not isinstance(port, int):
            raise (at / "tcp").error(f"must be true or a port number, not {v!r}")
        return ReadySpec("tcp", port=port, **common)
    if kind == "http":
        if not isinstance(v, str) or not v.startswith("/"):
            raise (at / "http").error(f'must be a path starting with "/", not {v!r}')
        contains = table.get("contains")
        if contains is not None and not isinstance(contains, str):
            raise (at / "contains").error("must be a string")
        status = _status(table.get("status", [200, 399]), at / "status")
        return ReadySpec("http", path=v, status=status, contains=contains, **common)
    if kind == "exec":
        return ReadySpec("exec", command=_string(v, at / "exec"), **common)
    pattern = _string(v, at / "log")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise (at / "log").error(f"is not a regular expression: {exc}") from None
    return ReadySpec("log", pattern=pattern, **common)


def _status(value: Any, at: At) -> tuple[int, int]:
    def ok(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and 100 <= x <= 599

    if ok(value):
        return (value, value)
    if isinstance(value, list) and len(value) == 2 and all(ok(x) for x in value):
        lo, hi = value
        if lo <= hi:
            return (lo, hi)
    raise at.error(f"must be an HTTP status (100-599) or [low, high], not {value!r}")


def parse_restart(value: Any, at: At) -> RestartSpec:
    if isinstance(value, str):
        return RestartSpec(policy=_policy(value, at))
    table = want_table(value, at, '"on-failure" or a table: policy, backoff, backoff_max, max')
    check_keys(table, RESTART_KEYS, at)
    spec = RestartSpec(
        policy=_policy(table.get("policy", "on-failure"), at / "policy"),
        backoff=number(table.get("backoff", 1.0), at / "backoff"),
        backoff_max=number(table.get("backoff_max", 30.0), at / "backoff_max"),
        max=count(table.get("max", 5), at / "max"),
    )
    if spec.backoff_max < spec.backoff:
        raise (at / "backoff_max").error("must be at least backoff")
    return spec


def _policy(value: Any, at: At) -> Policy:
    for p in POLICIES:
        if value == p:
            return p
    raise at.error(f"must be one of {', '.join(repr(p) for p in POLICIES)}, not {value!r}")


def _signal(value: Any, at: At) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return int(signal.Signals(value))
        except ValueError:
            pass
    elif isinstance(value, str):
        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if name in signal.Signals.__members__:
            return int(signal.Signals[name])
    raise at.error(f'must be a signal name or number, e.g. "SIGINT", not {value!r}')
