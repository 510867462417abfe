"""The environment a command runs in: streams, TTY-ness, colour (as httpie's Environment).

CLI tests build an ``Env`` over ``io.StringIO`` and need no patching.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms of every command
if TYPE_CHECKING:
    from typing import TextIO


class Env:
    """Where a command writes and reads, and how: a plain class, not a dataclass, since
    every command builds one and ``import dataclasses`` costs ~8 ms (homeport/_record.py).
    Left as None, the TTY flags, colour and width are found from the streams."""

    def __init__(
        self,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        stdin: TextIO | None = None,
        stdout_isatty: bool | None = None,
        stdin_isatty: bool | None = None,
        color: bool | None = None,
        width: int | None = None,
    ) -> None:
        self.stdout: TextIO = sys.stdout if stdout is None else stdout
        self.stderr: TextIO = sys.stderr if stderr is None else stderr
        self.stdin: TextIO = sys.stdin if stdin is None else stdin
        self.stdout_isatty = _isatty(self.stdout) if stdout_isatty is None else stdout_isatty
        self.stdin_isatty = _isatty(self.stdin) if stdin_isatty is None else stdin_isatty
        if color is None:
            color = self.stdout_isatty and "NO_COLOR" not in os.environ
        self.color = color
        if width is None:
            width = terminal_columns() if self.stdout_isatty else 0
        self.width = width

    def __repr__(self) -> str:
        return f"Env(stdout_isatty={self.stdout_isatty}, color={self.color}, width={self.width})"

    def out(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def err(self, text: str) -> None:
        self.stderr.write(text + "\n")


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def terminal_columns() -> int:
    """Terminal width: $COLUMNS, else the terminal's, else 100. (Not shutil: its import
    costs more than the rest of `homeport ls` start-up.)"""
    env_cols = os.environ.get("COLUMNS", "")
    if env_cols.isdigit() and int(env_cols) > 0:
        return int(env_cols)
    try:
        return os.get_terminal_size(sys.__stdout__.fileno() if sys.__stdout__ else 1).columns
    except (OSError, ValueError):
        return 100
