"""The one error a project file can raise: it names the file, the key path and what is accepted."""

from __future__ import annotations

from pathlib import Path

from homeport.errors import UsageError


class ProjectError(UsageError):
    """A bad ``homeport.toml`` (or ``[tool.homeport]``): exit status 2, never a traceback.

    ``key`` is the dotted path of the offending key (``services.api.ready.http``), ``line``
    the line number where the TOML parser gave one (syntax errors only: tomllib keeps no
    positions for values it parsed)."""

    def __init__(
        self,
        file: Path | str,
        key: str,
        problem: str,
        *,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = f"{file}:{line}" if line is not None else str(file)
        at = f" {key}:" if key else ""
        super().__init__(f"{where}:{at} {problem}", hint=hint)
        self.file = str(file)
        self.key = key
        self.problem = problem
        self.line = line
