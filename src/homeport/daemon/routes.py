"""Pure rules for routes: names, targets and auth specs as users type them.

``--auth`` is resolved here for ``up``, ``run`` and ``route add`` alike (``resolve_auth``):
``basic:USER`` takes its password from ``HOMEPORT_AUTH_PASSWORD`` or a prompt, so that it never
sits on a command line, which every user on the machine can read in ``ps`` for as long as the
process lives; ``basic:USER:PASS`` still works, with a warning saying so.

``api`` and ``api.localhost`` both name ``api.localhost``; ``3000``, ``:3000``,
``127.0.0.1:3000``, ``localhost:3000``, ``[::1]:3000``, ``http://127.0.0.1:3000`` and
``unix:/run/app.sock`` are targets. Targets must stay on this machine's loopback: the gateway
is not a forward proxy to the network.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from homeport.errors import UsageError
from homeport.gateway.contract import AuthMode, Route

SUFFIX = ".localhost"
#: RFC 1123 §2.1 host name labels.
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_RESERVED = ("homeport.localhost",)


def normalize_name(text: str) -> str:
    """``API`` -> ``api.localhost``; ``api.shop`` -> ``api.shop.localhost``."""
    name = text.strip().lower().rstrip(".")
    if name.startswith("*."):
        name = name[2:]
    if name != "localhost" and not name.endswith(SUFFIX):
        name += SUFFIX
    labels = name.split(".")
    if name == "localhost" or len(name) > 253 or not all(_LABEL.match(x) for x in labels):
        raise UsageError(
            f"bad route name {text!r}; use letters, digits and '-', e.g. api or api.shop"
        )
    if name in _RESERVED:
        raise UsageError(f"{name} is homeport's own name; pick another")
    return name


def name_from_folder(folder: str) -> str:
    """A route name from a project folder: ``My_App`` -> ``my-app``."""
    label = re.sub(r"[^a-z0-9-]+", "-", folder.lower()).strip("-")[:63].strip("-")
    return label or "app"


def normalize_tcp_target(text: str) -> str:
    """A TCP route's target as ``tcp://HOST:PORT`` (loopback only)."""
    t = text.strip().removeprefix("tcp://")
    if t.startswith(("unix:", "http://", "https://")):
        raise UsageError(f"bad TCP target {text!r}; use PORT or HOST:PORT")
    return "tcp://" + normalize_target(t).removeprefix("http://")


def normalize_target(text: str) -> str:
    """A loopback target as ``http://HOST:PORT`` or ``unix:/path``."""
    t = text.strip()
    if t.startswith("tcp://"):
        return normalize_tcp_target(t)
    if t.startswith("unix:"):
        if not t[5:].startswith("/"):
            raise UsageError(f"bad target {text!r}; a unix socket needs an absolute path")
        return t
    if t.startswith("https://"):
        raise UsageError(f"bad target {text!r}; the gateway speaks plain HTTP to its targets")
    t = t.removeprefix("http://").rstrip("/")
    if t.isdigit():
        t = f"127.0.0.1:{t}"
    elif t.startswith(":"):
        t = f"127.0.0.1{t}"
    host, _, port = t.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(
            f"bad target {text!r}; use PORT, HOST:PORT, http://HOST:PORT or unix:/PATH"
        )
    if not _is_loopback(host):
        raise UsageError(
            f"target {text!r} is not on loopback; homeport routes to this machine only",
            hint="use 127.0.0.1, [::1] or localhost",
        )
    return f"http://{host}:{int(port)}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback and (
            ":" not in host or host.startswith("[")
        )
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class AuthSpec:
    mode: AuthMode
    secret: str | None = None


def parse_auth(text: str | None) -> AuthSpec:
    """``token`` (a fresh random token), ``token:SECRET``, ``basic:USER:PASS`` or ``none``."""
    if text is None or text == "none":
        return AuthSpec("none")
    if text == "token":
        return AuthSpec("token", secrets.token_urlsafe(24))
    if text.startswith("token:") and len(text) > len("token:"):
        return AuthSpec("token", text[len("token:") :])
    parts = text.split(":", 2)
    if parts[0] == "basic" and len(parts) == 3 and parts[1] and parts[2]:
        return AuthSpec("basic", f"{parts[1]}:{parts[2]}")
    raise UsageError(f"bad auth {text!r}; use token, token:SECRET or basic:USER:PASS")


def route_from_json(data: dict[str, Any]) -> Route:
    """A route from the control API's body, validated (raises UsageError)."""
    if not isinstance(data.get("name"), str) or not isinstance(data.get("target"), str):
        raise UsageError("a route needs 'name' and 'target' strings")
    auth = parse_auth(data.get("auth") if isinstance(data.get("auth"), str) else None)
    hosts = data.get("allow_hosts") or []
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise UsageError("'allow_hosts' must be a list of host names")
    service_id = data.get("service_id")
    origins = data.get("allow_origins") or []
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise UsageError("'allow_origins' must be a list of origins")
    tcp = bool(data.get("tcp")) or data["target"].strip().startswith("tcp://")
    if tcp and auth.mode != "none":
        raise UsageError("a TCP route carries raw bytes: HTTP --auth cannot apply to it")
    return Route(
        name=normalize_name(data["name"]),
        target=normalize_tcp_target(data["target"]) if tcp else normalize_target(data["target"]),
        wildcard=bool(data.get("wildcard") or data["name"].strip().startswith("*.")),
        auth=auth.mode,
        secret=auth.secret,
        same_origin=bool(data.get("same_origin")),
        allow_hosts=tuple(h.lower() for h in hosts),
        service_id=service_id if isinstance(service_id, str) else None,
        allow_cross_site=bool(data.get("allow_cross_site")),
        allow_origins=tuple(normalize_origins(origins)),
        allow_underscores=bool(data.get("allow_underscores")),
    )


def normalize_origins(texts: list[str]) -> list[str]:
    """``--allow-origin`` values as the guard compares them (``http://web.localhost:5173``)."""
    from homeport.gateway.guard import normalize_origin

    out = []
    for text in texts:
        origin = normalize_origin(text)
        if origin is None:
            raise UsageError(
                f"bad origin {text!r}; an origin is SCHEME://HOST[:PORT] with no path, "
                "e.g. http://localhost:5173 or https://web.shop.localhost:62893"
            )
        if origin not in out:
            out.append(origin)
    return out


def gateway_auth(route: Route, default: AuthSpec) -> Route:
    """With ``--expose``, a route without auth of its own takes the gateway's."""
    if route.auth != "none" or default.mode == "none":
        return route
    from dataclasses import replace

    return replace(route, auth=default.mode, secret=default.secret)


#: Where ``--auth basic:USER`` finds its password when no prompt is wanted (scripts, CI).
PASSWORD_ENV = "HOMEPORT_AUTH_PASSWORD"
#: The ``--auth`` help line the three commands share.
AUTH_HELP = (
    f"token | token:SECRET | basic:USER (password from ${PASSWORD_ENV}, else a prompt)"
    " | basic:USER:PASS (visible in ps: avoid)"
)
INLINE_WARNING = (
    "warning: the password in --auth basic:USER:PASS is visible to every user in the process"
    f" list (ps); use --auth basic:USER with {PASSWORD_ENV} set, or type it at the prompt"
)


@dataclass(frozen=True, slots=True)
class PasswordSource:
    """Where ``basic:USER`` looks for its password: the environment (the variable is removed
    from it on read, so no child inherits it), then ``ask(prompt)`` (None: no terminal)."""

    environ: MutableMapping[str, str]
    ask: Callable[[str], str] | None = None
    warn: Callable[[str], None] = lambda _: None


def resolve_auth(text: str | None, source: PasswordSource) -> str | None:
    """The ``--auth`` value as the daemon wants it, its password filled in.

    ``HOMEPORT_AUTH_PASSWORD`` is taken out of ``source.environ`` whatever ``text`` is: it is
    meant for homeport alone and must not reach the command ``homeport run`` starts."""
    from_env = source.environ.pop(PASSWORD_ENV, None)
    if text is None:
        return None
    kind, _, rest = text.partition(":")
    user, colon, _ = rest.partition(":")
    if kind != "basic" or colon:
        try:
            parse_auth(text)
        except UsageError:
            raise UsageError(
                f"bad auth {text!r}; use token, token:SECRET or basic:USER"
                f" (its password from {PASSWORD_ENV} or a prompt)"
            ) from None
        if kind == "basic":
            source.warn(INLINE_WARNING)
        return text
    if not user:
        raise UsageError(f"bad auth {text!r}; use basic:USER, e.g. basic:me")
    return f"basic:{user}:{_password(user, from_env, source.ask)}"


def _password(user: str, from_env: str | None, ask: Callable[[str], str] | None) -> str:
    if from_env is not None:
        if not from_env:
            raise UsageError(f"{PASSWORD_ENV} is empty; put the password for {user} in it")
        return from_env
    if ask is None:
        raise UsageError(
            f"--auth basic:{user} needs a password and there is no terminal to ask for it;"
            f" pass it in the environment: read -rs P; {PASSWORD_ENV}=$P homeport ..."
        )
    password = ask(f"password for {user}: ")
    if not password:
        raise UsageError(f"empty password for {user}; basic auth needs one")
    # Asked twice, as passwd(1) does: a typo nobody saw would lock the user out.
    if ask("same password again: ") != password:
        raise UsageError("the two passwords differ; nothing was started")
    return password
