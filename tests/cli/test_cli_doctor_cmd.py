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
    "tls.ca",
    "tls.leaves",
    "tls.trust",
    "hosts.block",
    "hosts.nss",
}


def test_json_lists_every_check_and_exit_follows_failures(cli: Cli) -> None:
    r = cli("doctor", "--json")
    j = json.loads(r.stdout)
    assert {c["id"] for c in j["checks"]} == IDS
    assert all(c["status"] in ("ok", "warn", "fail", "skip") for c in j["checks"])
    assert j["counts"] == {s: sum(c["status"] == s for c in j["checks"]) for s in j["counts"]}
    assert r.status == (1 if j["counts"]["fail"] else 0)


def test_text_shows_status_and_fixes(cli: Cli) -> None:
    # One run only: the machine changes between two runs (TIME-WAIT, listeners).
    r = cli("doctor")
    lines = r.stdout.splitlines()
    assert lines[-2] == ""
    heads = [i for i, line in enumerate(lines[:-2]) if line and not line.startswith(" ")]
    assert {lines[i].split()[1] for i in heads} == IDS
    for n, i in enumerate(heads):
        status = lines[i].split()[0]
        assert status in ("ok", "warn", "fail", "skip")
        block = lines[i + 1 : heads[n + 1] if n + 1 < len(heads) else len(lines) - 2]
        if status == "ok":
            assert block == []  # ok checks stay one line
        elif status in ("warn", "fail"):
            assert block  # a reason, a fix, or both
    counts = lines[-1].split(", ")
    assert sum(int(c.split()[0]) for c in counts) == len(IDS)


def test_only_filters(cli: Cli) -> None:
    r = cli("doctor", "--json", "--only", "loopback.ipv4", "--only", "ports.ephemeral")
    j = json.loads(r.stdout)
    assert [c["id"] for c in j["checks"]] == ["loopback.ipv4", "ports.ephemeral"]


def test_unknown_check_is_a_usage_error(cli: Cli) -> None:
    r = cli("doctor", "--only", "nope")
    assert r.status == 2
    assert r.stderr.startswith("homeport: unknown check nope (accepted: ")
    assert r.stdout == ""


def test_perf_text_and_its_usage_error(cli: Cli) -> None:
    r = cli("doctor", "--perf")
    assert r.status == 0
    assert "loopback TCP (127.0.0.1)" in r.stdout
    assert "AF_UNIX baseline" in r.stdout
    assert "verdict" in r.stdout
    bad = cli("doctor", "--perf", "--only", "firewall.lo")
    assert bad.status == 2
    assert "--perf" in bad.stderr
