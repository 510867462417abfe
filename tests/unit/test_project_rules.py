"""The supervisor's pure rules: restart back-off, when a dependency's condition holds or never
will, and the readiness schedule."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from homeport.project import parse_text
from homeport.project.schema import ReadySpec, RestartSpec
from homeport.services import readiness
from homeport.services.supervisor import _check_deps


def test_backoff_doubles_to_its_cap() -> None:
    spec = RestartSpec("on-failure", backoff=1.0, backoff_max=30.0, max=5)
    assert [spec.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_readiness_is_quick_first_then_backs_off_to_the_interval() -> None:
    spec = ReadySpec("tcp", interval=0.25)
    assert readiness.pause(spec, 0.5, 0) == pytest.approx(0.01)
    assert readiness.pause(spec, 2.9, 0) == pytest.approx(0.01)
    later = [readiness.pause(spec, 4.0, n) for n in range(12)]
    assert later == sorted(later)
    assert later[-1] == 0.25


TEXT = """
[services.db]
cmd = "x"
[services.migrate]
cmd = "x"
kind = "task"
depends_on = ["db"]
[services.api]
cmd = "x"
depends_on = { db = "ready", migrate = "completed" }
[services.log]
cmd = "x"
depends_on = { db = "started" }
"""


def run_with(states: dict[str, str]) -> Any:
    stack = parse_text(TEXT, Path("/p/homeport.toml"))
    units = {
        s.name: SimpleNamespace(state=states[s.name], message="", launch=SimpleNamespace(
            depends_on=s.depends_on))
        for s in stack.services
    }  # fmt: skip
    return SimpleNamespace(units=units)


@pytest.mark.parametrize(
    ("db", "migrate", "api_waits", "api_problem", "log_waits"),
    [
        ("pending", "pending", True, None, True),
        ("starting", "pending", True, None, False),
        ("ready", "starting", True, None, False),
        ("ready", "completed", False, None, False),
        ("ready", "failed", False, "migrate is failed", False),
        ("crashloop", "pending", False, "db is crashloop", False),
        ("backoff", "pending", True, None, True),
    ],
)
def test_dependency_conditions(
    db: str, migrate: str, api_waits: bool, api_problem: str | None, log_waits: bool
) -> None:
    run = run_with({"db": db, "migrate": migrate, "api": "pending", "log": "pending"})
    problem, waiting = _check_deps(run, run.units["api"])
    assert problem == api_problem
    assert waiting is api_waits
    problem, waiting = _check_deps(run, run.units["log"])
    assert waiting is log_waits
