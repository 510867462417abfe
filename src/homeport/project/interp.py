"""``${NAME.port}``, ``${NAME.url}``, ``${NAME.host}``, ``${env.VAR}`` (pure).

References are checked when the file loads (``check``: unknown services, unknown fields, a
port asked of a service without one) and substituted once the ports are chosen
(``substitute``). ``$$`` is a literal ``$``; a ``$`` not followed by ``{`` is left alone, so a
shell ``$PORT`` in ``cmd`` reaches the shell. ``${env.VAR:-default}`` gives a default for an
unset variable; an unset variable without one is an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

REF = re.compile(r"\$\$|\$\{([^}]*)\}")
FIELDS = ("port", "url", "host")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What other services may ask of one service."""

    port: int | None
    url: str | None
    host: str = "127.0.0.1"


class BadReference(ValueError):
    pass


def references(text: str) -> list[str]:
    return [m.group(1) for m in REF.finditer(text) if m.group(0) != "$$"]


def check(text: str, services: Mapping[str, bool]) -> None:
    """Raise BadReference for a reference that cannot resolve. ``services`` maps each name
    to whether it has a port."""
    for ref in references(text):
        _split(ref, services)


def _split(ref: str, services: Mapping[str, bool]) -> tuple[str, str]:
    head, dot, rest = ref.partition(".")
    if not dot or not rest:
        raise BadReference(f"${{{ref}}}: write ${{NAME.port}}, ${{NAME.url}}, ${{NAME.host}}"
                           " or ${env.VAR}")  # fmt: skip
    if head == "env":
        name = rest.split(":-", 1)[0]
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise BadReference(f"${{{ref}}}: {name!r} is not an environment variable name")
        return head, rest
    if head not in services:
        known = ", ".join(sorted(services)) or "none"
        raise BadReference(f"${{{ref}}}: no service named {head!r} (services: {known})")
    if rest not in FIELDS:
        raise BadReference(f"${{{ref}}}: a service has port, url and host, not {rest!r}")
    if rest in ("port", "url") and not services[head]:
        raise BadReference(f"${{{ref}}}: {head} has no port (port = false)")
    return head, rest


def substitute(text: str, endpoints: Mapping[str, Endpoint], environ: Mapping[str, str]) -> str:
    """``text`` with every reference replaced."""
    has_port = {n: e.port is not None for n, e in endpoints.items()}

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        head, rest = _split(m.group(1), has_port)
        if head == "env":
            name, sep, default = rest.partition(":-")
            if name in environ:
                return environ[name]
            if sep:
                return default
            raise BadReference(f"${{{m.group(1)}}}: {name} is not set (${{env.{name}:-x}}"
                               " gives a default)")  # fmt: skip
        e = endpoints[head]
        value = {"port": e.port, "url": e.url, "host": e.host}[rest]
        return str(value)

    return REF.sub(one, text)


def substitute_all(
    texts: Mapping[str, str], endpoints: Mapping[str, Endpoint], environ: Mapping[str, str],
    on_error: Callable[[str, BadReference], Exception],
) -> dict[str, str]:  # fmt: skip
    out = {}
    for key, text in texts.items():
        try:
            out[key] = substitute(text, endpoints, environ)
        except BadReference as exc:
            raise on_error(key, exc) from None
    return out
