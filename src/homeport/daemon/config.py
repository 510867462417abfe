"""``DaemonConfig``: the options of a gateway daemon, defined once.

``homeport up`` builds it from flags, the client builds it from the environment to know where
to look, and the daemon runs from it. ``build`` validates: a non-loopback listen address needs
``--expose ADDR`` *and* authentication (DESIGN.md: never listen beyond loopback unless asked,
and then only with authentication on).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from homeport.addr import http_url
from homeport.errors import UsageError
from homeport.paths import state_dir

DEFAULT_PORT = 62893
#: Names the control API answers to (with the port), the DNS-rebinding allowlist.
CONTROL_HOSTS = ("homeport.localhost", "localhost", "127.0.0.1", "[::1]")
LOOPBACK_LISTEN = ("127.0.0.1", "::1")
#: More gateway processes than this is a typo, not a machine.
MAX_WORKERS = 256


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    state_dir: Path
    port: int = DEFAULT_PORT
    #: Extra non-loopback addresses to listen on (``--expose``).
    expose: tuple[str, ...] = ()
    #: Gateway-wide auth for routes that have none of their own: ``none``, ``token`` or
    #: ``basic:user:pass``. Required (not ``none``) when ``expose`` is set.
    auth: str = "none"
    access_log: bool = True
    access_capacity: int = 100_000
    #: Plain-HTTP requests get a 308 to the same URL over https (``--https-only``).
    https_only: bool = False
    #: Gateway processes (``--workers``): the daemon and ``workers - 1`` worker processes
    #: sharing its addresses with ``SO_REUSEPORT``.
    workers: int = 1

    @classmethod
    def build(
        cls,
        *,
        port: int | None = None,
        expose: tuple[str, ...] = (),
        auth: str | None = None,
        directory: Path | None = None,
        access_log: bool = True,
        https_only: bool = False,
        workers: int = 1,
    ) -> DaemonConfig:
        """Flags first, then ``HOMEPORT_PORT``, then the default."""
        if port is None:
            port = _env_port()
        if not 0 < port < 65536:
            raise UsageError(f"port {port} is out of range; use 1-65535")
        auth = auth or "none"
        _check_auth(auth)
        for addr in expose:
            _check_expose(addr)
        if expose and auth == "none":
            raise UsageError(
                f"refusing to listen on {', '.join(expose)} without authentication",
                hint="add --auth token (or --auth basic:USER, the password from a prompt or "
                "HOMEPORT_AUTH_PASSWORD) to --expose",
            )
        if not 1 <= workers <= MAX_WORKERS:
            raise UsageError(
                f"--workers {workers} is out of range; use 1-{MAX_WORKERS} or auto (one per core)"
            )
        return cls(
            state_dir=directory or state_dir(),
            port=port,
            expose=expose,
            auth=auth,
            access_log=access_log,
            https_only=https_only,
            workers=workers,
        )

    @property
    def listen(self) -> tuple[tuple[str, int], ...]:
        return tuple((h, self.port) for h in (*LOOPBACK_LISTEN, *self.expose))

    @property
    def control_hosts(self) -> tuple[str, ...]:
        """``Host`` header values the control API accepts."""
        names = [*CONTROL_HOSTS, *(_bracket(a) for a in self.expose)]
        out = [f"{n}:{self.port}" for n in names]
        if self.port == 80:  # RFC 9110 §7.2: the default port may be left out of Host
            out += names
        return tuple(out)

    @property
    def control_origins(self) -> tuple[str, ...]:
        return tuple(f"http://{h}" for h in self.control_hosts)

    @property
    def url(self) -> str:
        return http_url("homeport.localhost", self.port)

    def route_url(self, name: str) -> str:
        return http_url(name, self.port)

    @property
    def token_path(self) -> Path:
        return self.state_dir / "token"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "daemon.lock"

    @property
    def info_path(self) -> Path:
        return self.state_dir / "daemon.json"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "daemon.log"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "homeport.db"


def _env_port() -> int:
    text = os.environ.get("HOMEPORT_PORT", "")
    if not text:
        return DEFAULT_PORT
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"HOMEPORT_PORT={text!r} is not a port number") from None


def _check_auth(auth: str) -> None:
    if auth in ("none", "token"):
        return
    parts = auth.split(":", 2)
    if parts[0] == "basic" and len(parts) == 3 and parts[1] and parts[2]:
        return
    raise UsageError(
        f"bad --auth {auth!r}; use token or basic:USER "
        "(the password from a prompt or HOMEPORT_AUTH_PASSWORD)"
    )


def _check_expose(addr: str) -> None:
    try:
        ip = ipaddress.ip_address(addr.strip("[]"))
    except ValueError:
        raise UsageError(f"--expose wants an IP address of this machine, not {addr!r}") from None
    if ip.is_unspecified:
        raise UsageError(
            f"refusing to expose on {addr} (every interface)",
            hint="name the one address to expose, e.g. --expose 192.168.1.20",
        )


def _bracket(addr: str) -> str:
    return f"[{addr}]" if ":" in addr else addr
