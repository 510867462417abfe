"""Own-address planning (pure): the address flag, the default port, the fix to suggest."""

from __future__ import annotations

import pytest

from homeport.services.flags import bind_fix, default_port, plan_command


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        # the user chose the port: with an own address, the address flag still goes in
        ("python -m http.server 8000", "python -m http.server 8000 --bind 127.0.7.7"),
        ("uvicorn app:app --port 8000", "uvicorn app:app --port 8000 --host 127.0.7.7"),
        ("redis-server --port 6379", "redis-server --port 6379 --bind 127.0.7.7"),
        # the user chose the address too: it stands
        (
            "python -m http.server 8000 --bind 127.0.0.1",
            "python -m http.server 8000 --bind 127.0.0.1",
        ),
        # nothing chosen: the whole rule
        ("python -m http.server", "python -m http.server 8000 --bind 127.0.7.7"),
        ("./server", "./server"),
    ],
)
def test_the_address_flag_is_added_unless_the_user_chose_one(cmd: str, expected: str) -> None:
    plan = plan_command(tuple(cmd.split()), 8000 if "redis" not in cmd else 6379,
                        "127.0.7.7", own_address=True)  # fmt: skip
    assert " ".join(plan.argv) == expected
    assert plan.env["HOST"] == "127.0.7.7"


def test_without_own_address_a_chosen_port_leaves_the_line_alone() -> None:
    plan = plan_command(("python", "-m", "http.server", "8000"), 8000, "127.0.0.1")
    assert plan.argv == ("python", "-m", "http.server", "8000")


@pytest.mark.parametrize(
    ("cmd", "port"),
    [
        ("python -m http.server", 8000),
        ("npx vite", 5173),
        ("npm exec next dev", 3000),
        ("flask --app x run", 5000),
        ("redis-server", 6379),
        ("./server", None),
    ],
)
def test_framework_default_ports(cmd: str, port: int | None) -> None:
    assert default_port(tuple(cmd.split())) == port


def test_the_fix_names_the_frameworks_own_flag() -> None:
    assert bind_fix(("uvicorn", "app:app"), "127.0.7.7", 8000) == "--host 127.0.7.7"
    assert bind_fix(("python", "manage.py", "runserver"), "127.0.7.7", 8000) == "127.0.7.7:8000"
    assert "$HOST" in bind_fix(("./server",), "127.0.7.7", 8000)
