"""The command line's frame: version, help, bad usage, exit statuses."""

from __future__ import annotations

import subprocess
import sys

import pytest

import homeport


def test_version_fast_path(cli) -> None:
    r = cli("--version")
    assert (r.status, r.stdout) == (0, f"homeport {homeport.__version__}\n")


def test_python_dash_m_runs_the_cli() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "homeport", "--version"], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0
    assert r.stdout.startswith("homeport ")


def test_help_lists_the_commands(cli, capsys) -> None:
    assert cli("--help").status == 0
    out = capsys.readouterr().out
    for name in ("ls", "who"):
        assert f"    {name}" in out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["nosuchcommand"], "invalid choice"),
        (["ls", "--port", "x"], "invalid int value"),
        (["ls", "--port", "0"], "port out of range"),
        (["who", "[::1]"], "[IPv6]:PORT"),
        (["who", "host:port"], "cannot read a port"),
    ],
)
def test_bad_input_is_one_line_and_status_2(cli, capsys, argv, says) -> None:
    r = cli(*argv)
    err = r.stderr + capsys.readouterr().err
    assert r.status == 2
    assert says in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2


def test_bare_homeport_shows_listeners_and_attention(cli) -> None:
    r = cli()
    assert r.status == 0
    assert r.stdout.startswith(("PROTO", "nothing listens"))
