"""The ``homeport`` command line.

Each command lives in its own module under ``homeport.cli`` with three names:
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args, env) -> int``.
Modules import what they need inside ``run`` so that building the parser, and
``homeport --version``, stay cheap. Errors from the library become one line on
stderr and the exit status the error carries; no traceback reaches a user.
"""

from __future__ import annotations

import importlib
import sys

from homeport import __version__

# `homeport --version` must not pay for argparse, dataclasses or typing (~25 ms together,
# measured with -X importtime): names used only in annotations are imported for type
# checkers alone, the rest inside the functions that need them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from types import ModuleType
    from typing import Any

    from homeport.cli.env import Env

#: Command name -> module, in the order ``--help`` lists them.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("ls", "homeport.cli.ls"),
    ("who", "homeport.cli.who"),
    ("explain", "homeport.cli.explain"),
    ("doctor", "homeport.cli.doctor"),
    ("port", "homeport.cli.port"),
    ("addr", "homeport.cli.addr"),
    ("wait", "homeport.cli.wait"),
    ("kill", "homeport.cli.kill"),
    ("up", "homeport.cli.up"),
    ("down", "homeport.cli.down"),
    ("status", "homeport.cli.status"),
    ("run", "homeport.cli.run"),
    ("route", "homeport.cli.route"),
    ("hosts", "homeport.cli.hosts"),
    ("logs", "homeport.cli.logs"),
    ("events", "homeport.cli.events"),
    ("open", "homeport.cli.open"),
    ("audit", "homeport.cli.audit"),
    ("trust", "homeport.cli.trust"),
    ("service", "homeport.cli.service"),
    ("ps", "homeport.cli.ps"),
    ("config", "homeport.cli.config"),
    ("start", "homeport.cli.start"),
    ("stop", "homeport.cli.stop"),
    ("restart", "homeport.cli.restart"),
    ("mcp", "homeport.cli.mcp"),
)

#: Commands that report owners: the CLI starts the /proc fd walk before importing them.
EARLY_WALK = frozenset({"ls", "who", "explain"})
#: Read-only queries whose process may end without interpreter teardown (see ``console``).
QUICK_EXIT = frozenset({"ls", "who", "explain", "doctor"})

EPILOG = """\
with no command, homeport shows what listens on this machine and what needs attention.

exit status: 0 ok, 1 nothing found / not ready / findings, 2 bad usage,
3 environment problem (permission, platform), 130 interrupted.
Every command takes --json; colour only on a terminal and never with NO_COLOR."""


def _parser_class() -> type[argparse.ArgumentParser]:
    import argparse

    from homeport.cli.env import terminal_columns

    class _Formatter(argparse.RawDescriptionHelpFormatter):
        """Keeps docstring layout; knows its width without shutil (argparse builds a
        formatter for every add_argument, and shutil's import costs ~7 ms)."""

        def __init__(
            self,
            prog: str,
            indent_increment: int = 2,
            max_help_position: int = 24,
            width: int | None = None,
        ) -> None:
            width = width or max(terminal_columns() - 2, 40)
            super().__init__(prog, indent_increment, max_help_position, width)

    class _Parser(argparse.ArgumentParser):
        """argparse that reports bad usage as one line and exit status 2."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("formatter_class", _Formatter)
            super().__init__(*args, **kwargs)

        def error(self, message: str) -> None:  # type: ignore[override]
            self.exit(2, f"homeport: error: {message} (see '{self.prog} --help')\n")

    return _Parser


def _load(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:  # a command not built yet: leave it out
            return None
        raise


def build_parser(
    only: str | None = None,
) -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """The full parser, or with ``only`` the parser with just that command (faster: the
    other command modules are not imported)."""
    _Parser = _parser_class()
    parser = _Parser(
        prog="homeport",
        description="See, name, run and protect everything on 127.0.0.1:PORT.",
        epilog=EPILOG,
    )
    parser.add_argument("-V", "--version", action="version", version=f"homeport {__version__}")
    parser.add_argument(
        "--json", dest="global_json", action="store_true", help="machine-readable output"
    )
    # prog given: otherwise argparse builds a help formatter, which imports shutil (~7 ms).
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser, prog="homeport"
    )
    modules: dict[str, ModuleType] = {}
    for name, module_name in COMMANDS:
        if only is not None and name != only:
            continue
        module = _load(module_name)
        if module is None:
            continue
        doc = (module.__doc__ or "").strip()
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=doc or module.HELP,
        )
        module.add_arguments(p)
        if not any(a.dest == "json" for a in p._actions):
            p.add_argument("--json", action="store_true", help="machine-readable output")
        modules[name] = module
    return parser, modules


def console() -> None:
    """The ``homeport`` executable (and ``python -m homeport``): ``main`` with the process's
    arguments, then exit. After a read-only query with nothing left to clean up (no atexit
    handler registered: no logging, no temporary files) the process ends with ``os._exit``
    once its output is flushed: tearing the interpreter down frees every record one by one,
    ~20 ms after ``ls`` with 2,000 listeners, for nothing."""
    status = main()
    if _command_of(sys.argv[1:]) in QUICK_EXIT:
        import atexit
        import contextlib
        import os

        if atexit._ncallbacks() == 0:
            for stream in (sys.stdout, sys.stderr):
                # OSError: the reader left; ValueError: main closed stderr after a broken pipe.
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            os._exit(status)
    sys.exit(status)


def _command_of(args: Sequence[str]) -> str | None:
    """The command ``main`` runs for these arguments (bare ``homeport`` is ``ls``)."""
    first = next((a for a in args if not a.startswith("-")), None)
    if first is None and set(args) <= {"--json"}:
        return "ls"
    return first if args and first == args[0] else None


def main(argv: Sequence[str] | None = None, env: Env | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list in (["--version"], ["-V"]):  # fast path: no parser, no imports
        (env.stdout if env else sys.stdout).write(f"homeport {__version__}\n")
        return 0
    names = {name for name, _ in COMMANDS}
    if all(a == "--json" for a in args_list):
        # bare `homeport`: what listens and what needs attention
        args_list = ["ls", "--summary", *args_list]
    only = command if (command := _command_of(args_list)) in names else None
    if only in EARLY_WALK and not {"-h", "--help"} & set(args_list):
        from homeport.inventory import fdwalk

        fdwalk.begin_early()  # the owner walk runs while everything else imports
    from homeport.cli.env import Env

    env = env or Env()
    try:
        return _dispatch(args_list, only, env)
    finally:
        if only in EARLY_WALK:
            from homeport.inventory import fdwalk

            fdwalk.discard_early()


#: Commands that run another command given after ``--`` (``homeport explain -- CMD ARGS``):
#: what follows ``--`` is not parsed, it reaches the command as ``args.command_argv``.
RUNS_COMMAND = frozenset({"explain"})


def _split_command(args_list: list[str]) -> tuple[list[str], list[str] | None]:
    if "--" not in args_list:
        return args_list, None
    i = args_list.index("--")
    head = args_list[:i]
    if next((a for a in head if not a.startswith("-")), None) not in RUNS_COMMAND:
        return args_list, None
    return head, args_list[i + 1 :]


def _dispatch(args_list: list[str], only: str | None, env: Env) -> int:
    from homeport.errors import ExitStatus, HomeportError

    parser, modules = build_parser(only)
    args_list, command_argv = _split_command(args_list)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else ExitStatus.USAGE
    args.command_argv = command_argv
    command = args.command
    args.json = bool(getattr(args, "json", False) or args.global_json)
    try:
        return int(modules[command].run(args, env))
    except HomeportError as exc:
        env.err(f"homeport: {exc.message}")
        if exc.hint:
            env.err(f"hint: {exc.hint}")
        return int(exc.exit_status)
    except KeyboardInterrupt:
        env.err("homeport: interrupted")
        return int(ExitStatus.INTERRUPTED)
    except BrokenPipeError:
        # `homeport ls | head`: the reader left; say nothing and do not traceback.
        sys.stderr.close()
        return 0
