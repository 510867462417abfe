"""`homeport doctor` through the CLI: statuses, exit code policy, --only, --json."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Cli = Callable[..., Any]

IDS = {
    "loopback.interface",
    "loopback.ipv4",
    "loopback.ipv6",
    "localhost.hosts",
    "localhost.resolution",
    "localhost.subdomains",
    "ports.ephemeral",
    "ports.unprivileged",
    "firewall.lo",
    "tcp.time_wait",
    "homeport.port",
}


def test_json_lists_every_check_and_exit_follows_failures(cli: Cli) -> None:
    r = cli("doctor", "--json")
    j = json.loads(r.stdout)
    assert {c["id"] for c in j["checks"]} == IDS
    assert all(c["status"] in ("ok", "warn", "fail", "skip") for c in j["checks"])
    assert j["counts"] == {s: sum(c["status"] == s for c in j["checks"]) for s in j["counts"]}
    assert r.status == (1 if j["counts"]["fail"] else 0)


def test_text_shows_status_and_fixes(cli: Cli) -> None:
    r = cli("doctor")
    j = json.loads(cli("doctor", "--json").stdout)
    lines = r.stdout.splitlines()
    heads = [line for line in lines[:-2] if line and not line.startswith(" ")]
    assert [h.split()[1] for h in heads] == [c["id"] for c in j["checks"]]
    for c in j["checks"]:
        if c["status"] in ("warn", "fail") and c["fix"]:
            assert f"fix: {c['fix']}" in r.stdout
    assert lines[-1].endswith(("ok", "warn", "fail", "skip"))


def test_only_filters(cli: Cli) -> None:
    r = cli("doctor", "--json", "--only", "loopback.ipv4", "--only", "ports.ephemeral")
    j = json.loads(r.stdout)
    assert [c["id"] for c in j["checks"]] == ["loopback.ipv4", "ports.ephemeral"]


def test_unknown_check_is_a_usage_error(cli: Cli) -> None:
    r = cli("doctor", "--only", "nope")
    assert r.status == 2
    assert r.stderr.startswith("homeport: unknown check nope (accepted: ")
    assert r.stdout == ""
