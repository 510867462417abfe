"""A loaded project (``Stack``) and what the supervisor runs for each service (``Launch``).

Both are pure records. ``Stack`` is the validated file with the profile applied;
``resolve`` turns it into ``Launch`` records once ports are chosen, with every ``${...}``
substituted. ``Launch`` round-trips through JSON: the daemon keeps it in its store, so a
restarted daemon knows what it was running.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from homeport.project import graph, interp
from homeport.project.errors import ProjectError
from homeport.project.schema import (
    Dependency,
    Kind,
    ReadySpec,
    RestartSpec,
    ServiceSpec,
)


@dataclass(frozen=True, slots=True)
class Stack:
    """One project: its services in start order (dependencies first)."""

    name: str
    root: Path
    file: Path
    services: tuple[ServiceSpec, ...]
    branch: str | None = None
    profiles: tuple[str, ...] = ()  # applied, in order
    available_profiles: tuple[str, ...] = ()
    #: Key paths a profile changed (``services.api.env``) -> that profile's name.
    changed: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        """The project's name in the daemon: a worktree's branch keeps two checkouts apart."""
        return f"{self.branch}.{self.name}" if self.branch else self.name

    def route_name(self, spec: ServiceSpec) -> str:
        first = spec.route.name or spec.name
        prefix = f"{self.branch}." if self.branch else ""
        return f"{prefix}{first}.{self.name}.localhost"

    def service(self, name: str) -> ServiceSpec:
        for s in self.services:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.services)
        raise ProjectError(self.file, "services", f"no service named {name!r} (services: {known})")

    def deps(self) -> dict[str, list[str]]:
        return {s.name: [d.name for d in s.depends_on] for s in self.services}

    def levels(self) -> list[list[str]]:
        return graph.levels(self.deps())

    def select(self, names: Iterable[str] = ()) -> list[str]:
        """The named services and what they depend on (all when none named), in start order."""
        wanted = list(names)
        for n in wanted:
            self.service(n)
        keep = graph.closure(self.deps(), wanted) if wanted else {s.name for s in self.services}
        return [s.name for s in self.services if s.name in keep]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "root": str(self.root),
            "file": str(self.file),
            "branch": self.branch,
            "profiles": list(self.profiles),
            "available_profiles": list(self.available_profiles),
            "changed": [{"key": k, "profile": p} for k, p in self.changed],
            "levels": self.levels(),
            "services": [
                {
                    **s.to_json(),
                    "route_name": self.route_name(s) if s.routed else None,
                }
                for s in self.services
            ],
        }


@dataclass(frozen=True, slots=True)
class Launch:
    """A service ready to run: argv, folder, environment, port, probe, policies."""

    project: str
    name: str
    kind: Kind
    argv: tuple[str, ...]
    cwd: str
    env: tuple[tuple[str, str], ...]
    env_files: tuple[str, ...]
    port: int | None
    route: str | None
    url: str | None
    ready: ReadySpec
    restart: RestartSpec
    depends_on: tuple[Dependency, ...] = ()
    stop_signal: int = int(signal.SIGTERM)
    stop_timeout: float = 10.0
    allow_cross_site: bool = False
    allow_origins: tuple[str, ...] = ()
    #: The service's own loopback address (``address`` in the file), or None: 127.0.0.1.
    host: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop_signal"] = signal.Signals(self.stop_signal).name
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Launch:
        d = dict(data)
        ready = dict(d["ready"])
        ready["status"] = tuple(ready["status"])
        sig = d.get("stop_signal", "SIGTERM")
        return cls(
            **{
                **d,
                "argv": tuple(d["argv"]),
                "env": tuple((str(k), str(v)) for k, v in d["env"]),
                "env_files": tuple(d["env_files"]),
                "allow_origins": tuple(d.get("allow_origins", ())),
                "ready": ReadySpec(**ready),
                "restart": RestartSpec(**d["restart"]),
                "depends_on": tuple(Dependency(**x) for x in d["depends_on"]),
                "stop_signal": int(signal.Signals[sig]) if isinstance(sig, str) else int(sig),
            }
        )


def endpoints(
    stack: Stack,
    ports: Mapping[str, int | None],
    route_url: Callable[[str], str],
    addresses: Mapping[str, str] | None = None,
) -> dict[str, interp.Endpoint]:
    """What ``${NAME.port|url|host}`` means for each service, given the chosen ports and
    the addresses of the services that have one of their own."""
    out = {}
    for s in stack.services:
        port = ports.get(s.name)
        host = (addresses or {}).get(s.name, "127.0.0.1")
        if port is None:
            url = None
        elif s.route.enabled:
            url = route_url(stack.route_name(s))
        else:
            url = f"http://{host}:{port}"
        out[s.name] = interp.Endpoint(port, url, host)
    return out


def resolve(
    stack: Stack,
    names: Iterable[str],
    ports: Mapping[str, int | None],
    environ: Mapping[str, str],
    route_url: Callable[[str], str],
    addresses: Mapping[str, str] | None = None,
) -> list[Launch]:
    """``Launch`` records for ``names`` (in the stack's order), every reference substituted.
    ``ports`` holds the port chosen for every service that has one, ``addresses`` the
    address of every service with ``address`` set."""
    ends = endpoints(stack, ports, route_url, addresses)
    wanted = set(names)
    return [_launch(stack, s, ends, environ) for s in stack.services if s.name in wanted]


def _launch(
    stack: Stack, s: ServiceSpec, ends: Mapping[str, interp.Endpoint], environ: Mapping[str, str]
) -> Launch:
    def sub(key: str, text: str) -> str:
        try:
            return interp.substitute(text, ends, environ)
        except interp.BadReference as exc:
            raise ProjectError(stack.file, f"services.{s.name}.{key}", str(exc)) from None

    end = ends[s.name]
    argv = (
        ("/bin/sh", "-c", sub("cmd", s.cmd))
        if s.cmd is not None
        else tuple(sub(f"args.{i}", a) for i, a in enumerate(s.args or ()))
    )
    env: list[tuple[str, str]] = []
    if end.port is not None:
        env += [("PORT", str(end.port)), ("HOST", end.host)]
    if s.routed and end.url:
        env.append(("HOMEPORT_URL", end.url))
    env += [(k, sub(f"env.{k}", v)) for k, v in s.env]
    ready = s.ready
    if ready.command is not None:
        ready = replace(ready, command=sub("ready.exec", ready.command))
    return Launch(
        project=stack.id,
        name=s.name,
        kind=s.kind,
        argv=argv,
        cwd=os.path.normpath(stack.root / sub("cwd", s.cwd)),
        env=tuple(env),
        env_files=tuple(os.path.normpath(stack.root / f) for f in s.env_file),
        port=end.port,
        route=stack.route_name(s) if s.routed else None,
        url=end.url,
        ready=ready,
        restart=s.restart,
        depends_on=s.depends_on,
        stop_signal=s.stop_signal,
        stop_timeout=s.stop_timeout,
        allow_cross_site=s.route.allow_cross_site,
        allow_origins=s.route.allow_origins,
        host=end.host if s.address is not None else None,
    )
