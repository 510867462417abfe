"""The MCP server's policy (pure): the run allowlist, the kill rule, secret scrubbing, and
the argument check every tool call passes first."""

from __future__ import annotations

import pytest

from homeport.mcp.policy import (
    REDACTED,
    McpConfig,
    ProcessFacts,
    command_line,
    kill_refusal,
    run_refusal,
    scrub,
    scrub_text,
)

ME, UID, GATEWAY = 4000, 1000, 4100


def test_nothing_runs_without_an_allowlist() -> None:
    why = run_refusal(["npm", "run", "dev"], McpConfig())
    assert why is not None
    assert "--allow-run" in why


@pytest.mark.parametrize(
    ("argv", "allowed"),
    [
        (["npm", "run", "dev"], True),
        (["npm", "run", "build"], True),
        (["npm", "install", "left-pad"], False),
        (["npm", "run"], False),  # 'npm run *' needs something after the space
        (["sh", "-c", "npm run dev"], False),
        (["python3", "-m", "http.server", "8000"], True),
        (["python3", "-m", "http.server2"], True),  # fnmatch: the pattern says what it says
        (["python3", "-m", "http.server;", "rm"], False),  # quoted: 'http.server;'
    ],
)
def test_the_allowlist_is_fnmatch_over_the_quoted_command_line(
    argv: list[str], allowed: bool
) -> None:
    config = McpConfig(allow_run=("npm run *", "python3 -m http.server*"))
    assert (run_refusal(argv, config) is None) is allowed


def test_quoting_keeps_one_argument_one_argument() -> None:
    assert command_line(["npm", "run", "dev && rm -rf ~"]) == "npm run 'dev && rm -rf ~'"
    strict = McpConfig(allow_run=("npm run dev",))
    assert run_refusal(["npm", "run", "dev", "&&", "rm"], strict) is not None
    assert run_refusal(["npm", "run", "dev"], strict) is None


def test_any_allows_every_command() -> None:
    assert run_refusal(["anything", "at", "all"], McpConfig(allow_run=("any",))) is None


def _kill(p: ProcessFacts, scope: str = "session") -> str | None:
    config = McpConfig(allow_kill=scope)  # type: ignore[arg-type]
    return kill_refusal(p, config, my_uid=UID, gateway_pid=GATEWAY, me=ME)


def test_services_homeport_started_may_be_stopped() -> None:
    assert _kill(ProcessFacts(5000, UID, service_id="abc")) is None


def test_other_processes_only_with_allow_kill_any_and_only_this_users() -> None:
    stranger = ProcessFacts(5000, UID)
    why = _kill(stranger)
    assert why is not None
    assert "--allow-kill any" in why
    assert _kill(stranger, "any") is None
    other = _kill(ProcessFacts(5000, 0), "any")
    assert other is not None
    assert "another user" in other
    assert _kill(ProcessFacts(5000, None), "any") is not None


@pytest.mark.parametrize("pid", [1, ME, GATEWAY])
def test_never_pid_1_the_gateway_or_the_server_itself(pid: int) -> None:
    assert _kill(ProcessFacts(pid, UID, service_id="abc"), "any") is not None


def test_scrub_drops_secret_keys_and_known_secrets_everywhere() -> None:
    token = "s3cr3t-t0ken-value"
    data = {
        "route": {"name": "api.localhost", "auth": "token"},
        "token": token,
        "lines": [f"GET /?homeport_token={token}&x=1", f"using {token} now"],
        "env": {"PATH": "/bin"},
        "password": None,
    }
    out = scrub(data, [token])
    assert out["token"] == REDACTED
    assert out["env"] == REDACTED
    assert out["password"] is None  # nothing there to hide
    assert out["lines"] == [f"GET /?homeport_token={REDACTED}&x=1", f"using {REDACTED} now"]
    assert out["route"] == data["route"]
    assert data["token"] == token  # the input is not changed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://me:hunter2@127.0.0.1:8080/x", f"http://me:{REDACTED}@127.0.0.1:8080/x"),
        ("redis://:pw@localhost:6379", "redis://:pw@localhost:6379"),  # no user: left alone
        ("/login?token=abc123", f"/login?token={REDACTED}"),
        ("Authorization: Bearer abc.def", f"Authorization: Bearer {REDACTED}"),
        ("plain words, a@b and x=y", "plain words, a@b and x=y"),
    ],
)
def test_scrub_text_patterns(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


def test_short_strings_are_not_treated_as_secrets() -> None:
    # A one-letter "secret" would blank out every word that contains it.
    assert scrub({"a": "api"}, ["a"]) == {"a": "api"}


def test_arguments_are_checked_against_the_input_schema() -> None:
    from homeport.mcp.server import check_arguments

    assert check_arguments("kill_port", {"port": 3000}) is None
    assert check_arguments("kill_port", {}) == (
        "bad arguments for kill_port: arguments: 'port' is a required property"
    )
    assert "port: 0 is less than the minimum of 1" in (
        check_arguments("kill_port", {"port": 0}) or ""
    )
    extra = check_arguments("who", {"target": 1, "pid": 2}) or ""
    assert "Additional properties are not allowed ('pid' was unexpected)" in extra
    assert check_arguments("wait_for", {"targets": []}) is not None


def test_the_names_agents_tend_to_write_are_accepted_as_aliases() -> None:
    from homeport.mcp.server import canonical, check_arguments

    assert check_arguments("stop_service", {}) == (
        "bad arguments for stop_service: give 'service' or 'name' or 'id'"
    )
    for alias in ("name", "id"):
        assert check_arguments("service_logs", {alias: "web"}) is None
        assert canonical("service_logs", {alias: "web", "tail": 5}) == {"service": "web", "tail": 5}
    assert canonical("who", {"port": 3000}) == {"target": 3000}
    assert canonical("explain", {"target": "::1:5432"}) == {"text": "::1:5432"}
    assert canonical("run_service", {"cmd": ["npm", "run", "dev"]}) == {
        "command": ["npm", "run", "dev"]
    }
    # the documented name wins when both are given; tools without aliases are left alone
    assert canonical("who", {"target": "1", "port": 2}) == {"target": "1"}
    assert canonical("kill_port", {"port": 1}) == {"port": 1}


def test_secrets_on_command_lines_are_redacted() -> None:
    from homeport.mcp.policy import scrub_json

    owner = {"pid": 7, "cmdline": ["mysql", "--password", "hunter2", "-h", "db", "--token=abc1"]}
    clean, text = scrub_json({"owners": [owner]})
    assert clean["owners"][0]["cmdline"] == [
        "mysql", "--password", REDACTED, "-h", "db", f"--token={REDACTED}",
    ]  # fmt: skip
    assert "hunter2" not in text
    assert "abc1" not in text
    plain = {"owners": [{"pid": 8, "cmdline": ["python3", "-m", "http.server", "8000"]}]}
    assert scrub_json(plain)[0] is plain  # nothing to hide: the answer is not copied


def test_the_http_transport_refuses_foreign_hosts_origins_and_missing_tokens() -> None:
    from homeport.mcp.http import refusal

    ok = {"host": "homeport.localhost:62894", "authorization": "Bearer t0ken"}
    assert refusal(ok, 62894, "t0ken") is None
    assert (
        refusal({**ok, "host": "127.0.0.1:62894", "origin": "http://[::1]:62894"}, 62894, "t0ken")
        is None
    )
    cases = [
        ({**ok, "host": "evil.example:62894"}, 403, "Host"),
        ({**ok, "host": "homeport.localhost:1"}, 403, "Host"),  # another port is another site
        ({**ok, "origin": "http://evil.example"}, 403, "Origin"),
        ({**ok, "sec-fetch-site": "cross-site"}, 403, "cross-site"),
        ({"host": ok["host"]}, 401, "token"),
        ({**ok, "authorization": "Bearer wrong"}, 401, "token"),
        ({**ok, "authorization": "Basic t0ken"}, 401, "token"),
    ]
    for headers, status, word in cases:
        refused = refusal(headers, 62894, "t0ken")
        assert refused is not None, headers
        assert refused[0] == status
        assert word in refused[1]
