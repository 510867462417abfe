"""Pure finding rules: exposure verdicts, severities, escalation, owners and fixes."""

from __future__ import annotations

import pytest

from homeport.audit.findings import Exposure, covers, exposure, rules, scope
from homeport.audit.firewall import FirewallView, PortRule
from homeport.audit.identify import Exchange, Identity
from homeport.audit.outside import Attempt, OutsideReport
from homeport.audit.web import WebIssueRecord
from homeport.model import Listener, Process, Socket


def _listener(
    addr: str = "127.0.0.1",
    port: int = 6379,
    family: int = 4,
    v6only: bool | None = None,
    owner: str = "redis-server",
) -> Listener:
    from homeport.addr import exposure as bind_exposure

    sock = Socket("tcp", family, addr, port, "", 0, "LISTEN", 1, 0, v6only)  # type: ignore[arg-type]
    return Listener(sock, bind_exposure(addr), (Process(4242, owner, (owner,), 0, "redis"),))


REDIS_OPEN = Identity(
    "redis",
    "Redis",
    auth="open",
    proves="PING answered +PONG without AUTH",
    evidence=Exchange("redis-ping", b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"),
)
REDIS_LOCKED = Identity("redis", "Redis", auth="protected")
LOOP = Exposure("loopback", "bound to loopback only")


def _rules(
    listener: Listener,
    ident: Identity | None,
    exp: Exposure,
    web: tuple[WebIssueRecord, ...] = (),
    fw: FirewallView | None = None,
) -> set[tuple[str, str]]:
    return {(f.rule, f.severity) for f in rules(listener, ident, exp, web, fw)}


def test_unauthenticated_on_loopback_uses_the_catalogue_level() -> None:
    (f,) = rules(_listener(), REDIS_OPEN, LOOP)
    assert (f.rule, f.severity) == ("unauthenticated", "medium")
    assert f.owner == "redis-server (pid 4242, user redis)"
    assert f.pids == (4242,)
    assert f.listener == "127.0.0.1:6379/tcp"
    assert f.evidence[0].probe == "*1\r\n$4\r\nPING\r\n"
    assert f.evidence[0].answer == "+PONG\r\n"
    assert "requirepass" in f.fix


def test_protected_and_unknown_give_nothing_on_loopback() -> None:
    assert _rules(_listener(), REDIS_LOCKED, LOOP) == set()
    assert _rules(_listener(), None, LOOP) == set()


def test_reachable_and_open_is_critical_twice() -> None:
    exp = Exposure("reachable", "reachable from outside at 192.0.2.2")
    assert _rules(_listener("0.0.0.0"), REDIS_OPEN, exp) == {
        ("exposed-reachable", "critical"),
        ("unauthenticated", "critical"),
    }
    assert _rules(_listener("0.0.0.0"), REDIS_LOCKED, exp) == {("exposed-reachable", "high")}


def test_unverified_exposure_uses_firewall_rules() -> None:
    exp = Exposure("not-verified", "not verified (needs root)")
    assert _rules(_listener("0.0.0.0"), None, exp) == {("exposed-unverified", "medium")}
    fw = FirewallView("nft", True, False, (PortRule(6379, 6379, "drop", False, "nft"),))
    assert _rules(_listener("0.0.0.0"), None, exp, fw=fw) == {("exposed-unverified", "low")}
    assert _rules(_listener("0.0.0.0"), REDIS_OPEN, exp) == {
        ("exposed-unverified", "high"),
        ("unauthenticated", "critical"),
    }


def test_blocked_is_info() -> None:
    exp = Exposure("blocked", "the firewall dropped the outside-in probe")
    assert _rules(_listener("0.0.0.0"), None, exp) == {("exposed-blocked", "info")}


def test_dual_stack_and_docker_are_explained() -> None:
    exp = Exposure("reachable", "x")
    (f,) = rules(_listener("::", family=6, v6only=False), None, exp)
    assert "dual-stack" in f.title
    (d,) = rules(_listener("0.0.0.0", port=8080, owner="docker-proxy"), None, exp)
    assert "-p 127.0.0.1:8080:" in d.fix


def test_web_issue_severities_depend_on_the_service() -> None:
    ev = (Exchange("web-baseline", b"GET /", b"HTTP/1.1 200 OK\r\n\r\n"),)
    rebind = (WebIssueRecord("foreign-host", "answers foreign Host names: x", ev),)
    plain = Identity("http", "HTTP server")
    jupyter = Identity("jupyter", "Jupyter server", auth="open")
    assert _rules(_listener(), plain, LOOP, rebind) == {("dns-rebinding", "medium")}
    assert ("dns-rebinding", "high") in _rules(_listener(), jupyter, LOOP, rebind)
    # Behind a password, rebinding gets a page nothing an anonymous client would not get.
    locked = Identity("jupyter", "Jupyter server", auth="protected")
    assert _rules(_listener(), locked, LOOP, rebind) == set()
    cred = (WebIssueRecord("cors-credentials", "reflects", ev),)
    assert _rules(_listener(), locked, LOOP, cred) == {("cors-credentials", "high")}


@pytest.mark.parametrize(
    ("bind", "v6only", "target", "expected"),
    [
        ("0.0.0.0", None, "192.0.2.2", True),
        ("0.0.0.0", None, "fd00::2", False),
        ("::", False, "192.0.2.2", True),
        ("::", True, "192.0.2.2", False),
        ("::", None, "fd00::2", True),
        ("192.0.2.2", None, "192.0.2.2", True),
        ("192.0.2.3", None, "192.0.2.2", False),
        ("127.0.0.1", None, "192.0.2.2", False),
    ],
)
def test_covers(bind: str, v6only: bool | None, target: str, expected: bool) -> None:
    assert covers(bind, v6only, target) is expected


def test_exposure_from_attempts() -> None:
    rep = OutsideReport(
        True,
        None,
        ("198.18.9.1",),
        (
            Attempt("198.18.9.1", 1, "reachable"),
            Attempt("198.18.9.1", 2, "timeout"),
            Attempt("198.18.9.1", 3, "refused"),
        ),
        "198.18.0.2 in netns x",
    )
    assert exposure(_listener("0.0.0.0", 1), rep, None).status == "reachable"
    assert exposure(_listener("0.0.0.0", 2), rep, None).status == "blocked"
    assert exposure(_listener("0.0.0.0", 3), rep, None).detail.endswith(
        "rejected the outside-in probe"
    )
    assert exposure(_listener("127.0.0.1", 3), rep, None).status == "loopback"
    assert exposure(_listener("192.0.2.7", 3), rep, None).status == "not-covered"
    unverified = OutsideReport(False, "needs root")
    got = exposure(_listener("0.0.0.0", 3), unverified, None)
    assert got.status == "not-verified"
    assert "needs root" in got.detail


@pytest.mark.parametrize(
    ("addr", "family", "v6only", "expected"),
    [
        ("127.0.0.1", 4, None, "loopback"),
        ("0.0.0.0", 4, None, "all-interfaces"),
        ("::", 6, False, "all-interfaces+dual-stack"),
        ("::", 6, True, "all-interfaces"),
        ("192.168.1.20", 4, None, "lan"),
        ("100.101.102.103", 4, None, "vpn-tailnet"),
        ("8.8.8.8", 4, None, "public"),  # classified only, never contacted
    ],
)
def test_scope(addr: str, family: int, v6only: bool | None, expected: str) -> None:
    assert scope(_listener(addr, family=family, v6only=v6only)) == expected


def test_loopback_only_open_access_is_not_escalated() -> None:
    import dataclasses

    denied = Exchange("redis-ping", b"*1\r\n$4\r\nPING\r\n", b"-DENIED Redis is running ...")
    ident = dataclasses.replace(REDIS_OPEN, remote_auth="protected", remote_evidence=denied)
    exp = Exposure("reachable", "reachable from outside at 198.18.1.1")
    found = rules(_listener("0.0.0.0"), ident, exp)
    assert {(f.rule, f.severity) for f in found} == {
        ("exposed-reachable", "high"),
        ("unauthenticated", "medium"),
    }
    (auth,) = [f for f in found if f.rule == "unauthenticated"]
    assert [e.answer for e in auth.evidence] == ["+PONG\r\n", "-DENIED Redis is running ..."]
