"""Fixtures shared by every test folder."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from homeport.cli import main
from homeport.cli.env import Env


@dataclass
class CliResult:
    status: int
    stdout: str
    stderr: str


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private homeport state dir for this test."""
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    monkeypatch.setenv("HOMEPORT_STATE_DIR", str(d))
    return d


@pytest.fixture
def cli() -> object:
    """Run the CLI in-process: ``cli("ls", "--json")`` -> CliResult."""

    def run(*argv: str, stdin: str = "", tty: bool = False) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        env = Env(
            stdout=out,
            stderr=err,
            stdin=io.StringIO(stdin),
            stdout_isatty=tty,
            stdin_isatty=False,
            color=False,
            width=120 if tty else 0,
        )
        status = main(list(argv), env)
        return CliResult(status, out.getvalue(), err.getvalue())

    return run
