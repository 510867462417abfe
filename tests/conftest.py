"""Fixtures shared by every test folder."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
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


@pytest.fixture(autouse=True, scope="session")
def _private_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test writes the real ~/.local/state: ``homeport audit`` records its summary for
    /metrics there, and a test that forgets ``state_dir`` must not leave it behind.
    (The port leases keep their machine-wide directory: the plugin fixed it at start-up.)"""
    if "HOMEPORT_STATE_DIR" in os.environ:
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOMEPORT_STATE_DIR", str(tmp_path_factory.mktemp("state")))
        yield


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
