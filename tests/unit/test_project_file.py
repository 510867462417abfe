"""The project file, pure: parse, validate (each class of error names its key), profiles, the
dependency graph, interpolation, worktree prefixes."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from homeport.errors import ExitStatus
from homeport.project import ProjectError, parse_text, resolve
from homeport.project import graph as g
from homeport.project.stack import Launch
from homeport.project.worktree import as_label, branch_prefix, parse_head

FILE = Path("/srv/shop/homeport.toml")

SHOP = """
[project]
name = "shop"

[services.db]
cmd = "postgres -D .pg -k /tmp -c listen_addresses=127.0.0.1"
port = 5432
ready = { tcp = true }
route = false

[services.api]
cmd = "uvicorn app:app --reload"
env = { DATABASE_URL = "postgresql://127.0.0.1:${db.port}/shop" }
env_file = ".env"
depends_on = { db = "ready", migrate = "completed" }
ready = { http = "/health", status = 200 }
restart = "on-failure"

[services.web]
cmd = "npx vite"
env = { VITE_API_URL = "${api.url}", HOME_DIR = "${env.HOME}" }
depends_on = ["api"]

[services.migrate]
cmd = "alembic upgrade head"
depends_on = { db = "ready" }
kind = "task"

[profiles.test]
services.api.env = { APP_ENV = "test" }
services.db.port = 5433
"""


def error_of(text: str, **kw: object) -> ProjectError:
    with pytest.raises(ProjectError) as info:
        parse_text(text, FILE, **kw)  # type: ignore[arg-type]
    assert info.value.exit_status == ExitStatus.USAGE
    return info.value


def test_the_issue_sketch_parses_with_defaults() -> None:
    stack = parse_text(SHOP, FILE)
    assert stack.name == "shop"
    assert stack.root == FILE.parent
    assert [s.name for s in stack.services] == ["db", "migrate", "api", "web"]
    assert stack.levels() == [["db"], ["migrate"], ["api"], ["web"]]
    db, migrate, api, web = stack.services
    assert db.port == 5432
    assert db.ready.kind == "tcp"
    assert not db.routed
    assert migrate.kind == "task"
    assert migrate.port is None
    assert migrate.ready.kind == "completed"
    assert api.port == "auto"
    assert api.ready.kind == "http"
    assert api.ready.status == (200, 200)
    assert api.restart.policy == "on-failure"
    assert api.env_file == (".env",)
    assert [(d.name, d.condition) for d in api.depends_on] == [
        ("db", "ready"),
        ("migrate", "completed"),
    ]
    assert [(d.name, d.condition) for d in web.depends_on] == [("api", "ready")]
    assert stack.route_name(web) == "web.shop.localhost"
    assert web.stop_signal == signal.SIGTERM
    assert web.stop_timeout == 10.0


def test_a_listed_task_dependency_defaults_to_completed() -> None:
    text = """
[services.migrate]
cmd = "true"
kind = "task"
[services.api]
cmd = "x"
depends_on = ["migrate"]
"""
    api = parse_text(text, FILE).service("api")
    assert api.depends_on[0].condition == "completed"


def test_profile_merges_and_says_what_changed() -> None:
    stack = parse_text(SHOP, FILE, profiles=["test"])
    api = stack.service("api")
    assert dict(api.env) == {
        "DATABASE_URL": "postgresql://127.0.0.1:${db.port}/shop",
        "APP_ENV": "test",
    }
    assert stack.service("db").port == 5433
    assert dict(stack.changed) == {
        "services.api.env.APP_ENV": "test",
        "services.db.port": "test",
    }
    assert parse_text(SHOP, FILE).service("db").port == 5432


def test_an_error_in_a_profile_value_names_the_profile() -> None:
    text = SHOP + '\n[profiles.bad]\nservices.db.port = "x"\n'
    err = error_of(text, profiles=["bad"])
    assert err.key == "profiles.bad.services.db.port"
    assert '"auto"' in err.problem


def test_unknown_profile() -> None:
    err = error_of(SHOP, profiles=["prod"])
    assert err.key == "profiles"
    assert "'prod'" in err.problem
    assert "test" in err.problem


@pytest.mark.parametrize(
    ("body", "key", "says"),
    [
        ('[services.a]\ncmd = "x"\ncolour = 1', "services.a.colour", "unknown key"),
        ("[services.a]\nport = 80", "services.a.cmd", "missing"),
        ('[services.a]\ncmd = "x"\nargs = ["x"]', "services.a.args", "not both"),
        ('[services.a]\ncmd = "x"\nport = 70000', "services.a.port", "1-65535"),
        (
            '[services.a]\ncmd = "x"\nready = { tcp = true, http = "/" }',
            "services.a.ready",
            "exactly one",
        ),
        ('[services.a]\ncmd = "x"\nready = { http = "health" }', "services.a.ready.http", "/"),
        ('[services.a]\ncmd = "x"\nready = { log = "(" }', "services.a.ready.log", "regular"),
        (
            '[services.a]\ncmd = "x"\nready = { tcp = true, status = 200 }',
            "services.a.ready.status",
            "http",
        ),
        ('[services.a]\ncmd = "x"\nrestart = "sometimes"', "services.a.restart", "on-failure"),
        (
            '[services.a]\ncmd = "x"\nrestart = { backoff = -1 }',
            "services.a.restart.backoff",
            "number",
        ),
        ('[services.a]\ncmd = "x"\nstop_signal = "SIGNOPE"', "services.a.stop_signal", "signal"),
        ('[services.a]\ncmd = "x"\nkind = "job"', "services.a.kind", "task"),
        ('[services.a]\ncmd = "x"\ndepends_on = ["b"]', "services.a.depends_on.b", "no service"),
        (
            '[services.a]\ncmd = "x"\ndepends_on = { a = "ready" }',
            "services.a.depends_on.a",
            "itself",
        ),
        (
            '[services.a]\ncmd = "x"\n[services.b]\ncmd = "y"\ndepends_on = { a = "done" }',
            "services.b.depends_on.a",
            "started",
        ),
        (
            '[services.a]\ncmd = "x"\n[services.b]\ncmd = "y"\ndepends_on = { a = "completed" }',
            "services.b.depends_on.a",
            "never completes",
        ),
        ('[services.A_b]\ncmd = "x"', "services.A_b", "not a name"),
        ('[services.a]\ncmd = "x ${b.port}"', "services.a.cmd", "no service named 'b'"),
        ('[services.a]\ncmd = "x"\nenv = { U = "${a.colour}" }', "services.a.env.U", "colour"),
        (
            '[services.a]\ncmd = "x"\nport = false\nenv = { U = "${a.port}" }',
            "services.a.env.U",
            "no port",
        ),
        (
            '[services.a]\ncmd = "x"\nport = false\nready = { tcp = true }',
            "services.a.ready.tcp",
            "no port",
        ),
        ('[services.a]\ncmd = "x"\nenv = { U = ["list"] }', "services.a.env.U", "string"),
        ('[services.a]\ncmd = "x"\nroute = { nmae = "x" }', "services.a.route.nmae", "unknown"),
        ('[project]\nnmae = "x"\n[services.a]\ncmd = "x"', "project.nmae", "unknown key"),
        (
            '[services.a]\ncmd = "x"\nroute = { allow_origin = "localhost/x" }',
            "services.a.route.allow_origin",
            "bad origin",
        ),
        (
            '[services.a]\ncmd = "x"\nroute = { allow_cross_site = "yes" }',
            "services.a.route.allow_cross_site",
            "true or false",
        ),
        ('[servces.a]\ncmd = "x"', "servces", "unknown key"),
        ('[project]\nname = "x"', "services", "no services"),
        (
            '[services.a]\ncmd = "x"\n[profiles.p]\nprofiles = {}',
            "profiles.p.profiles",
            "unknown key",
        ),
    ],
)
def test_every_class_of_error_names_its_key(body: str, key: str, says: str) -> None:
    err = error_of(body)
    assert err.key == key, err.message
    assert says in err.message
    assert err.message.startswith(f"{FILE}: {key}:")


def test_an_unknown_key_lists_the_accepted_ones() -> None:
    err = error_of('[services.a]\ncmd = "x"\ncolour = 1')
    assert err.hint is not None
    assert "depends_on" in err.hint
    assert "restart" in err.hint


def test_a_syntax_error_gives_the_line() -> None:
    err = error_of('[services.a]\ncmd = "x"\nport = = 3\n')
    assert err.line == 3
    assert err.message.startswith(f"{FILE}:3:")


def test_a_dependency_cycle_is_an_error_that_shows_it() -> None:
    text = """
[services.a]
cmd = "x"
depends_on = ["c"]
[services.b]
cmd = "x"
depends_on = ["a"]
[services.c]
cmd = "x"
depends_on = ["b"]
"""
    err = error_of(text)
    assert "cycle" in err.problem
    assert "a -> c -> b -> a" in err.problem


def test_pyproject_tool_table(tmp_path: Path) -> None:
    # pyproject's own [project] table is PEP 621's, not ours: only [tool.homeport] is read.
    text = '[project]\nname = "pkg"\n[tool.homeport.services.web]\ncmd = "x"\ncolour = 1\n'
    file = tmp_path / "pyproject.toml"
    with pytest.raises(ProjectError) as info:
        parse_text(text, file)
    assert info.value.key == "tool.homeport.services.web.colour"
    stack = parse_text(text.replace("colour = 1\n", ""), file)
    assert stack.name == tmp_path.name.lower().replace("_", "-")
    assert [s.name for s in stack.services] == ["web"]


def test_resolve_substitutes_after_ports_are_chosen() -> None:
    stack = parse_text(SHOP, FILE)
    ports = {"db": 5432, "api": 40001, "web": 40002, "migrate": None}
    launches = resolve(
        stack,
        stack.select(),
        ports,
        {"HOME": "/home/me"},
        lambda name: f"http://{name}:62893",
    )
    by = {la.name: la for la in launches}
    assert dict(by["api"].env)["DATABASE_URL"] == "postgresql://127.0.0.1:5432/shop"
    assert dict(by["api"].env)["PORT"] == "40001"
    assert dict(by["web"].env)["VITE_API_URL"] == "http://api.shop.localhost:62893"
    assert dict(by["web"].env)["HOME_DIR"] == "/home/me"
    assert by["web"].argv == ("/bin/sh", "-c", "npx vite")
    assert by["web"].cwd == "/srv/shop"
    assert by["api"].env_files == ("/srv/shop/.env",)
    assert by["db"].route is None
    assert by["web"].route == "web.shop.localhost"
    assert "PORT" not in dict(by["migrate"].env)
    assert Launch.from_json(by["api"].to_json()) == by["api"]


def test_an_unset_environment_variable() -> None:
    stack = parse_text('[services.a]\ncmd = "x ${env.NOPE}"\n', FILE)
    with pytest.raises(ProjectError) as info:
        resolve(stack, ["a"], {"a": 1}, {}, str)
    assert info.value.key == "services.a.cmd"
    assert "NOPE is not set" in info.value.problem
    stack = parse_text('[services.a]\ncmd = "x ${env.NOPE:-dflt} $$HOME $PORT"\n', FILE)
    (a,) = resolve(stack, ["a"], {"a": 1}, {}, str)
    assert a.argv[-1] == "x dflt $HOME $PORT"


def test_select_takes_what_a_service_needs() -> None:
    stack = parse_text(SHOP, FILE)
    assert stack.select(["api"]) == ["db", "migrate", "api"]
    assert stack.select(["db"]) == ["db"]
    with pytest.raises(ProjectError, match="no service named 'nope'"):
        stack.select(["nope"])


def test_graph_levels_and_dependents() -> None:
    deps = {"db": [], "cache": [], "api": ["db", "cache"], "web": ["api"], "worker": ["db"]}
    assert g.levels(deps) == [["db", "cache"], ["api", "worker"], ["web"]]
    assert g.dependents(deps, ["db"]) == {"db", "api", "web", "worker"}
    assert g.closure(deps, ["web"]) == {"web", "api", "db", "cache"}
    with pytest.raises(g.Cycle):
        g.levels({"a": ["b"], "b": ["a"]})


def test_worktree_branch_prefix(tmp_path: Path) -> None:
    main = tmp_path / "main"
    (main / ".git" / "worktrees" / "fx").mkdir(parents=True)
    (main / ".git" / "worktrees" / "fx" / "HEAD").write_text("ref: refs/heads/Feature/X_1\n")
    linked = tmp_path / "fx"
    (linked / "sub").mkdir(parents=True)
    (linked / ".git").write_text(f"gitdir: {main}/.git/worktrees/fx\n")
    assert branch_prefix(main) is None
    assert branch_prefix(linked / "sub") == "feature-x-1"
    sub = tmp_path / "module"
    sub.mkdir()
    (sub / ".git").write_text(f"gitdir: {main}/.git/modules/module\n")
    assert branch_prefix(sub) is None
    assert parse_head("0123456789abcdef0123456789abcdef01234567") == "detached-0123456"
    assert as_label("--") is None
    stack = parse_text('[project]\nname = "shop"\n[services.web]\ncmd = "x"', FILE, branch="fx")
    assert stack.id == "fx.shop"
    assert stack.route_name(stack.services[0]) == "fx.web.shop.localhost"


def test_route_options_reach_the_launch() -> None:
    text = (
        '[project]\nname = "shop"\n[services.api]\ncmd = "x"\n'
        'route = { name = "backend", allow_origin = ["http://localhost:5173"] }\n'
    )
    stack = parse_text(text, FILE)
    (api,) = resolve(stack, ["api"], {"api": 4000}, {}, lambda n: f"http://{n}:1")
    assert api.route == "backend.shop.localhost"
    assert api.allow_origins == ("http://localhost:5173",)
    assert api.allow_cross_site is False
    assert Launch.from_json(api.to_json()) == api
