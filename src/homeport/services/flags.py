"""Per-command flags as data: how to make a dev server listen on ``HOST:PORT``.

Every command gets ``PORT``, ``HOST=127.0.0.1`` and ``HOMEPORT_URL`` in its environment. Many
servers ignore ``PORT``, so for the ones below homeport also adds their own flags, unless the
user already gave a flag that chooses the address (then the user's choice stands).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Launchers that run the real program: ``npx vite``, ``uv run uvicorn`` ...
_LAUNCHERS: dict[str, int] = {
    "npx": 1, "bunx": 1, "pnpx": 1, "yarn": 1, "uvx": 1,
    "pnpm": 2, "npm": 2, "bun": 2, "uv": 2, "poetry": 2, "pipenv": 2, "pdm": 2,
}  # fmt: skip
#: For two-word launchers, the second word that means "run the next program".
_LAUNCH_VERBS = ("exec", "run", "x")


@dataclass(frozen=True, slots=True)
class FlagRule:
    """``program`` (basename, or the module of ``python -m``) and, when set, its
    ``subcommand``; ``add`` is appended with ``{host}``/``{port}`` filled in unless an
    argument in ``chosen`` is already there (or, with ``positional``, any bare argument
    after the program/subcommand, e.g. ``runserver 0:8000``)."""

    program: str
    subcommand: str | None
    add: tuple[str, ...]
    chosen: tuple[str, ...]
    positional: bool = False
    #: The port it listens on when told none (``run --own-address`` keeps it).
    default_port: int | None = None
    #: The flags that choose only the address, and the arguments that mean the user chose
    #: one: with an own address, the address is set even when the user gave the port.
    host_add: tuple[str, ...] = ()
    host_chosen: tuple[str, ...] = ()


RULES: tuple[FlagRule, ...] = (
    FlagRule("uvicorn", None, ("--host", "{host}", "--port", "{port}"),
             ("--port", "--host", "--fd", "--uds"), default_port=8000,
             host_add=("--host", "{host}"), host_chosen=("--host", "--fd", "--uds")),
    FlagRule("gunicorn", None, ("--bind", "{host}:{port}"), ("-b", "--bind"),
             default_port=8000),
    FlagRule("flask", "run", ("--host", "{host}", "--port", "{port}"),
             ("--port", "-p", "--host", "-h"), default_port=5000,
             host_add=("--host", "{host}"), host_chosen=("--host", "-h")),
    FlagRule("manage.py", "runserver", ("{host}:{port}",), (), positional=True,
             default_port=8000),
    FlagRule("django-admin", "runserver", ("{host}:{port}",), (), positional=True,
             default_port=8000),
    FlagRule("http.server", None, ("{port}", "--bind", "{host}"), ("-b", "--bind"),
             positional=True, default_port=8000,
             host_add=("--bind", "{host}"), host_chosen=("-b", "--bind")),
    FlagRule("vite", None, ("--port", "{port}", "--strictPort", "--host", "{host}"),
             ("--port", "--host"), default_port=5173,
             host_add=("--host", "{host}"), host_chosen=("--host",)),
    FlagRule("next", "dev", ("-p", "{port}", "-H", "{host}"),
             ("-p", "--port", "-H", "--hostname"), default_port=3000,
             host_add=("-H", "{host}"), host_chosen=("-H", "--hostname")),
    FlagRule("astro", "dev", ("--port", "{port}", "--host", "{host}"), ("--port", "--host"),
             default_port=4321, host_add=("--host", "{host}"), host_chosen=("--host",)),
    FlagRule("webpack-dev-server", None, ("--port", "{port}", "--host", "{host}"),
             ("--port", "--host"), default_port=8080,
             host_add=("--host", "{host}"), host_chosen=("--host",)),
    FlagRule("webpack", "serve", ("--port", "{port}", "--host", "{host}"),
             ("--port", "--host"), default_port=8080,
             host_add=("--host", "{host}"), host_chosen=("--host",)),
    FlagRule("redis-server", None, ("--port", "{port}", "--bind", "{host}"),
             ("--port", "--bind"), default_port=6379,
             host_add=("--bind", "{host}"), host_chosen=("--bind",)),
    FlagRule("postgres", None, ("-p", "{port}", "-h", "{host}"), ("-p", "-h"),
             default_port=5432, host_add=("-h", "{host}"), host_chosen=("-h",)),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Plan:
    argv: tuple[str, ...]
    env: dict[str, str]
    #: The rule that added flags, or None when only the environment tells the port.
    rule: str | None


def program_of(argv: tuple[str, ...]) -> tuple[str, int]:
    """The program a command line runs, and the index of its first own argument."""
    i = 0
    while i < len(argv):
        base = os.path.basename(argv[i])
        if base == "--" and i > 0:  # npm exec -- vite: the end of the launcher's options
            i += 1
            continue
        if base in _LAUNCHERS:
            if _LAUNCHERS[base] == 2 and i + 1 < len(argv) and argv[i + 1] in _LAUNCH_VERBS:
                i += 2
            else:
                i += 1
            continue
        if base.startswith("python") and i + 1 < len(argv):
            nxt = argv[i + 1]
            if nxt == "-m":
                return (argv[i + 2], i + 3) if i + 2 < len(argv) else ("", len(argv))
            if not nxt.startswith("-"):  # python manage.py ...
                return os.path.basename(nxt), i + 2
        return base, i + 1
    return "", len(argv)


def _applies(rule: FlagRule, args: tuple[str, ...]) -> bool:
    rest = args
    if rule.subcommand is not None:
        if rule.subcommand not in args:  # options may come first: ``flask --app x run``
            return False
        rest = args[args.index(rule.subcommand) + 1 :]
    for a in rest:
        if any(a == f or a.startswith(f + "=") for f in rule.chosen):
            return False
        if rule.positional and not a.startswith("-"):
            return False
    return True


def plan_command(argv: tuple[str, ...], port: int, host: str = "127.0.0.1",
                 url: str | None = None, *, own_address: bool = False) -> Plan:  # fmt: skip
    """The command line and environment that make ``argv`` serve on ``host:port``.

    ``own_address``: ``host`` is the service's leased address, so its address flag is
    added even where the user already chose the port (``http.server 8000``)."""
    env = {"PORT": str(port), "HOST": host}
    if url:
        env["HOMEPORT_URL"] = url
    program, start = program_of(argv)
    args = argv[start:]
    if argv and os.path.basename(argv[0]) == "npm" and "--" not in argv:
        # npm exec takes options after the program for itself unless they follow "--";
        # leave the line alone: PORT, and the listener discovery, still find the server.
        return Plan(argv, env, None)
    for rule in RULES:
        if rule.program == program and _applies(rule, args):
            extra = tuple(a.format(host=host, port=port) for a in rule.add)
            return Plan((*argv, *extra), env, rule.program)
    own = rule_for(argv)
    if own_address and own is not None and own.host_add and _host_free(own, args):
        extra = tuple(a.format(host=host, port=port) for a in own.host_add)
        return Plan((*argv, *extra), env, own.program)
    return Plan(argv, env, None)


def _host_free(rule: FlagRule, args: tuple[str, ...]) -> bool:
    return not any(a == f or a.startswith(f + "=") for a in args for f in rule.host_chosen)


def rule_for(argv: tuple[str, ...]) -> FlagRule | None:
    """The rule for the program ``argv`` runs (its subcommand present), if any."""
    program, _ = program_of(argv)
    for rule in RULES:
        if rule.program == program and (rule.subcommand is None or rule.subcommand in argv):
            return rule
    return None


def default_port(argv: tuple[str, ...]) -> int | None:
    """The port the program listens on by default, when homeport knows it."""
    rule = rule_for(argv)
    return None if rule is None else rule.default_port


def bind_fix(argv: tuple[str, ...], host: str, port: int) -> str:
    """The flag that makes this program listen on ``host`` only, as a person types it."""
    rule = rule_for(argv)
    if rule is not None and rule.host_add:
        return " ".join(a.format(host=host, port=port) for a in rule.host_add)
    if rule is not None:
        return " ".join(a.format(host=host, port=port) for a in rule.add)
    return f"its own listen-address option set to $HOST ({host})"
