"""Pure rules of the control plane: route names, targets, auth specs, run flags, config."""

from __future__ import annotations

from pathlib import Path

import pytest

from homeport.daemon.config import DaemonConfig
from homeport.daemon.httpd import ParseError, parse_head
from homeport.daemon.procs import parse_stat_start
from homeport.daemon.routes import (
    PASSWORD_ENV,
    PasswordSource,
    name_from_folder,
    normalize_name,
    normalize_target,
    parse_auth,
    resolve_auth,
)
from homeport.errors import UsageError
from homeport.services.flags import plan_command, program_of
from homeport.services.password import parse_env_block


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("api", "api.localhost"),
        ("API.localhost", "api.localhost"),
        ("api.shop", "api.shop.localhost"),
        ("*.shop", "shop.localhost"),
        ("a-1", "a-1.localhost"),
        ("web.localhost.", "web.localhost"),
    ],
)
def test_names(text: str, name: str) -> None:
    assert normalize_name(text) == name


@pytest.mark.parametrize(
    "text", ["", "a b", "-a", "a_b", "localhost", "homeport", "x" * 64, "a..b"]
)
def test_bad_names(text: str) -> None:
    with pytest.raises(UsageError):
        normalize_name(text)


@pytest.mark.parametrize(
    ("folder", "label"), [("My_App", "my-app"), ("___", "app"), ("shop.v2", "shop-v2")]
)
def test_name_from_folder(folder: str, label: str) -> None:
    assert name_from_folder(folder) == label


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("3000", "http://127.0.0.1:3000"),
        (":3000", "http://127.0.0.1:3000"),
        ("localhost:8080", "http://localhost:8080"),
        ("[::1]:5173", "http://[::1]:5173"),
        ("http://127.0.0.2:80/", "http://127.0.0.2:80"),
        ("unix:/run/a.sock", "unix:/run/a.sock"),
    ],
)
def test_targets(text: str, target: str) -> None:
    assert normalize_target(text) == target


@pytest.mark.parametrize(
    "text",
    [
        "10.0.0.1:80",
        "example.com:80",
        "https://127.0.0.1:1",
        "127.0.0.1:0",
        "127.0.0.1:70000",
        "unix:rel",
        "::1:80",
        "x",
    ],
)
def test_bad_targets(text: str) -> None:
    with pytest.raises(UsageError):
        normalize_target(text)


def test_auth_specs() -> None:
    assert parse_auth(None).mode == "none"
    t1, t2 = parse_auth("token"), parse_auth("token")
    assert t1.mode == "token"
    assert t1.secret != t2.secret  # a fresh random token each time
    assert parse_auth("token:abc").secret == "abc"
    basic = parse_auth("basic:me:p:w")
    assert (basic.mode, basic.secret) == ("basic", "me:p:w")
    for bad in ("basic:me", "basic::x", "bearer", "token:"):
        with pytest.raises(UsageError):
            parse_auth(bad)


class Prompt:
    """A terminal that answers the prompts with ``answers`` in turn and records them."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.answers.pop(0)


def test_basic_user_takes_the_password_from_the_environment_and_removes_it() -> None:
    environ = {PASSWORD_ENV: "s3cret:with:colons", "PATH": "/bin"}
    warnings: list[str] = []
    ask = Prompt()
    source = PasswordSource(environ, ask=ask, warn=warnings.append)
    assert resolve_auth("basic:me", source) == "basic:me:s3cret:with:colons"
    assert environ == {"PATH": "/bin"}  # no child inherits it
    assert (ask.prompts, warnings) == ([], [])  # the variable wins over the terminal


@pytest.mark.parametrize("flag", [None, "token", "token:abc", "none"])
def test_the_password_variable_never_outlives_resolution(flag: str | None) -> None:
    environ = {PASSWORD_ENV: "pw"}
    assert resolve_auth(flag, PasswordSource(environ)) == flag
    assert environ == {}


def test_basic_user_asks_twice_on_a_terminal() -> None:
    ask = Prompt("pw", "pw")
    assert resolve_auth("basic:me", PasswordSource({}, ask=ask)) == "basic:me:pw"
    assert ask.prompts == ["password for me: ", "same password again: "]
    with pytest.raises(UsageError, match="differ"):
        resolve_auth("basic:me", PasswordSource({}, ask=Prompt("pw", "pW")))
    with pytest.raises(UsageError, match="empty password"):
        resolve_auth("basic:me", PasswordSource({}, ask=Prompt("")))


def test_basic_user_without_variable_or_terminal_says_how_to_pass_it() -> None:
    with pytest.raises(UsageError) as info:
        resolve_auth("basic:me", PasswordSource({}))
    assert PASSWORD_ENV in info.value.message
    assert "\n" not in info.value.message
    with pytest.raises(UsageError, match="is empty"):
        resolve_auth("basic:me", PasswordSource({PASSWORD_ENV: ""}))


def test_inline_password_still_works_with_a_warning() -> None:
    warnings: list[str] = []
    got = resolve_auth("basic:me:pw", PasswordSource({}, warn=warnings.append))
    assert got == "basic:me:pw"
    assert len(warnings) == 1
    assert "process list" in warnings[0]
    assert PASSWORD_ENV in warnings[0]


@pytest.mark.parametrize("flag", ["basic", "basic:", "basic::pw", "basic:me:", "bearer", "token:"])
def test_bad_auth_flags(flag: str) -> None:
    with pytest.raises(UsageError, match="bad auth"):
        resolve_auth(flag, PasswordSource({PASSWORD_ENV: "pw"}, ask=Prompt("pw", "pw")))


def test_env_block_bounds_from_proc_stat() -> None:
    # fields 3..52 of a stat line: env_start (50) = 1000, env_end (51) = 2000
    fields = ["S", *["0"] * 46, "1000", "2000", "0"]
    assert parse_env_block("42 (a) b) " + " ".join(fields)) == (1000, 2000)
    assert parse_env_block("42 (old kernel) S 1 2 3") is None
    fields[47] = "3000"  # start after end: not a block
    assert parse_env_block("42 (a) " + " ".join(fields)) is None
    start, end = parse_env_block(Path("/proc/self/stat").read_text()) or (0, 0)
    assert 0 < start < end


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        ("python -m http.server", "python -m http.server 4000 --bind 127.0.0.1"),
        ("python3 -m http.server 8000", "python3 -m http.server 8000"),
        ("uvicorn app:app --reload", "uvicorn app:app --reload --host 127.0.0.1 --port 4000"),
        ("uv run uvicorn m:a --port=1", "uv run uvicorn m:a --port=1"),
        ("gunicorn -w 2 app:app", "gunicorn -w 2 app:app --bind 127.0.0.1:4000"),
        ("flask --app x run", "flask --app x run --host 127.0.0.1 --port 4000"),
        ("flask routes", "flask routes"),
        ("python manage.py runserver", "python manage.py runserver 127.0.0.1:4000"),
        ("python manage.py runserver 0:8000", "python manage.py runserver 0:8000"),
        ("npx vite", "npx vite --port 4000 --strictPort --host 127.0.0.1"),
        ("next dev", "next dev -p 4000 -H 127.0.0.1"),
        ("next build", "next build"),
        ("astro dev", "astro dev --port 4000 --host 127.0.0.1"),
        ("webpack serve", "webpack serve --port 4000 --host 127.0.0.1"),
        ("webpack-dev-server --port 1", "webpack-dev-server --port 1"),
        ("node server.js", "node server.js"),
        ("npm exec vite", "npm exec vite"),
        ("npm exec -- vite", "npm exec -- vite --port 4000 --strictPort --host 127.0.0.1"),
        ("pnpm exec vite", "pnpm exec vite --port 4000 --strictPort --host 127.0.0.1"),
        ("npm run dev", "npm run dev"),
    ],
)
def test_port_flags_are_added_unless_chosen(cmd: str, expected: str) -> None:
    plan = plan_command(tuple(cmd.split()), 4000, "127.0.0.1", "http://x.localhost:62893")
    assert " ".join(plan.argv) == expected
    assert plan.env == {
        "PORT": "4000",
        "HOST": "127.0.0.1",
        "HOMEPORT_URL": "http://x.localhost:62893",
    }


def test_program_of_sees_through_launchers() -> None:
    assert program_of(("pnpm", "exec", "vite"))[0] == "vite"
    assert program_of(("/usr/bin/python3.11", "-m", "uvicorn", "a:b")) == ("uvicorn", 3)
    assert program_of(("python",)) == ("python", 1)


def test_stat_start_time_survives_odd_comm() -> None:
    fields = " ".join(str(n) for n in range(3, 30))
    text = f"1234 (we ird) name)) {fields}"
    assert parse_stat_start(text) == 22.0


def test_parse_head_and_refusals() -> None:
    method, path, query, headers = parse_head(b"GET /api/x?a=1 HTTP/1.1\r\nHost: h:1\r\nX-A:  b ")
    assert (method, path, query) == ("GET", "/api/x", "a=1")
    assert headers == [("host", "h:1"), ("x-a", "b")]
    for bad in (b"GET /\r\nHost: x", b"GET / HTTP/1.1\r\nHost : x", b"GET / HTTP/1.1\r\n fold"):
        with pytest.raises(ParseError):
            parse_head(bad)


def test_config_refuses_exposure_without_auth(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="without authentication"):
        DaemonConfig.build(port=5000, expose=("192.168.1.20",), directory=tmp_path)
    with pytest.raises(UsageError, match="every interface"):
        DaemonConfig.build(port=5000, expose=("0.0.0.0",), auth="token", directory=tmp_path)
    with pytest.raises(UsageError):
        DaemonConfig.build(port=5000, expose=("lan.example",), auth="token", directory=tmp_path)
    cfg = DaemonConfig.build(port=5000, expose=("192.168.1.20",), auth="token", directory=tmp_path)
    assert cfg.listen == (("127.0.0.1", 5000), ("::1", 5000), ("192.168.1.20", 5000))
    assert "192.168.1.20:5000" in cfg.control_hosts


def test_config_port_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEPORT_PORT", "5111")
    assert DaemonConfig.build(directory=tmp_path).port == 5111
    assert DaemonConfig.build(port=5222, directory=tmp_path).port == 5222
    monkeypatch.setenv("HOMEPORT_PORT", "nope")
    with pytest.raises(UsageError):
        DaemonConfig.build(directory=tmp_path)


def test_port_80_urls_leave_the_port_out(tmp_path: Path) -> None:
    cfg = DaemonConfig(state_dir=tmp_path, port=80)
    assert cfg.route_url("api.localhost") == "http://api.localhost"
    assert "homeport.localhost" in cfg.control_hosts


def test_discovery_parsers() -> None:
    from homeport.services.discover import parse_pgrp, socket_inode

    # a whole stat line (52 fields), with a comm holding ') '
    line = (
        "77 (a) b) S 1 4242 4242 0 -1 4194560 "
        + " ".join(["0"] * 12)
        + " 5 "
        + " ".join(["0"] * 30)
    )
    assert parse_pgrp(line) == 4242
    assert parse_pgrp("garbage") is None
    assert socket_inode("socket:[123456]") == 123456
    assert socket_inode("pipe:[5]") is None
    assert socket_inode("/dev/null") is None
