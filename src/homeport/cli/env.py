"""The environment a command runs in: streams, TTY-ness, colour (as httpie's Environment).

CLI tests build an ``Env`` over ``io.StringIO`` and need no patching.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms of every command
if TYPE_CHECKING:
    from typing import TextIO


@dataclass
class Env:
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    stdout_isatty: bool | None = None
    stdin_isatty: bool | None = None
    color: bool | None = None
    width: int | None = None

    def __post_init__(self) -> None:
        if self.stdout_isatty is None:
            self.stdout_isatty = _isatty(self.stdout)
        if self.stdin_isatty is None:
            self.stdin_isatty = _isatty(self.stdin)
        if self.color is None:
            self.color = bool(self.stdout_isatty) and "NO_COLOR" not in os.environ
        if self.width is None:
            self.width = terminal_columns() if self.stdout_isatty else 0

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
