"""Renderers: the JSON shape, SARIF 2.1.0 structure, and the text layout."""

from __future__ import annotations

from typing import Any

import pytest

from homeport.audit import report as rep
from homeport.audit.findings import Evidence, Exposure, Finding
from homeport.audit.identify import Identity
from homeport.audit.outside import OutsideReport
from homeport.audit.run import AuditReport, ListenerAudit
from homeport.model import Listener, Process, Socket

SOCK = Socket("tcp", 4, "127.0.0.1", 6379, "", 0, "LISTEN", 7)
LISTENER = Listener(SOCK, "loopback", (Process(11, "redis-server", (), 0, "redis"),))
F1 = Finding(
    "unauthenticated",
    "medium",
    "Redis answers without authentication: PING",
    "tcp",
    "127.0.0.1",
    6379,
    "redis",
    "redis-server (pid 11, user redis)",
    (11,),
    (Evidence("*1\r\n$4\r\nPING\r\n", "+PONG\r\n"),),
    "set `requirepass`",
)
F2 = Finding(
    "dns-rebinding",
    "high",
    "Jupyter server on 127.0.0.1:8888: answers foreign Host",
    "tcp",
    "127.0.0.1",
    8888,
    "jupyter",
    None,
    (),
    (),
    "refuse foreign Host",
)
REPORT = AuditReport(
    (F2, F1),
    (
        ListenerAudit(
            LISTENER,
            "127.0.0.1:6379",
            Identity("redis", "Redis", "7.0.15", "open"),
            Exposure("loopback", "bound to loopback only"),
        ),
    ),
    OutsideReport(False, "needs root"),
    None,
    1_800_000_000.0,
    0.42,
    ("note one",),
)


def validate_sarif(doc: dict[str, Any]) -> None:
    """The SARIF 2.1.0 constraints code-scanning tools rely on (OASIS spec §3.13–3.27)."""
    assert doc["version"] == "2.1.0"
    assert doc["$schema"].endswith("sarif-schema-2.1.0.json")
    assert isinstance(doc["runs"], list)
    assert len(doc["runs"]) == 1
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert isinstance(driver["name"], str)
    ids = [r["id"] for r in driver["rules"]]
    assert len(ids) == len(set(ids))
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"]
        assert rule["defaultConfiguration"]["level"] in ("none", "note", "warning", "error")
        float(rule["properties"]["security-severity"])
    for result in run["results"]:
        assert result["message"]["text"]
        assert result["level"] in ("none", "note", "warning", "error")
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        for loc in result["locations"]:
            assert isinstance(loc["physicalLocation"]["artifactLocation"]["uri"], str)
        assert all(isinstance(v, str) for v in result["partialFingerprints"].values())


def test_sarif() -> None:
    doc = rep.to_sarif(REPORT)
    validate_sarif(doc)
    run = doc["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["dns-rebinding", "unauthenticated"]
    assert [(r["ruleId"], r["level"]) for r in run["results"]] == [
        ("dns-rebinding", "error"),
        ("unauthenticated", "warning"),
    ]
    loc = run["results"][1]["locations"][0]
    assert loc["physicalLocation"]["artifactLocation"]["uri"] == (
        "homeport-audit/tcp/127.0.0.1/6379"
    )
    assert loc["logicalLocations"][0]["name"] == "127.0.0.1:6379/tcp"
    assert "+PONG" in run["results"][1]["message"]["text"]
    assert run["invocations"][0]["startTimeUtc"] == "2027-01-15T08:00:00.000Z"


def test_json_shape() -> None:
    doc = rep.to_json(REPORT)
    assert list(doc) == [
        "version",
        "started",
        "duration_s",
        "summary",
        "outside",
        "firewall",
        "notes",
        "listeners",
        "findings",
    ]
    assert doc["summary"] == {
        "listeners": 1,
        "findings": 2,
        "worst": "high",
        "by_severity": {"critical": 0, "high": 1, "medium": 1, "low": 0, "info": 0},
    }
    assert doc["outside"] == {
        "verified": False,
        "reason": "needs root",
        "source": None,
        "addresses": [],
    }
    x = doc["listeners"][0]
    assert x["service"]["service"] == "redis"
    assert x["service"]["auth"] == "open"
    assert x["outside"] == {"status": "loopback", "detail": "bound to loopback only"}
    assert x["owner"] == "redis-server (pid 11, user redis)"
    f = doc["findings"][1]
    assert f["listener"] == "127.0.0.1:6379/tcp"
    assert f["evidence"] == [{"probe": "*1\r\n$4\r\nPING\r\n", "answer": "+PONG\r\n"}]


def test_text() -> None:
    assert rep.headline(REPORT) == (
        "homeport audit: 1 listener, 2 findings (1 high, 1 medium) in 0.4s"
    )
    lines = rep.render_findings(REPORT.findings)
    assert lines[0].startswith("HIGH     Jupyter server")
    assert "         sent:     *1⏎ $4⏎ PING" in lines
    assert lines[-1] == "         fix:      set `requirepass`"
    assert rep.listener_rows(REPORT) == [
        [
            "127.0.0.1:6379/tcp",
            "Redis 7.0.15",
            "open",
            "loopback",
            "redis-server (pid 11, user redis)",
        ]
    ]


@pytest.mark.parametrize("sev", ["info", "low", "medium", "high", "critical"])
def test_every_severity_has_a_sarif_level(sev: str) -> None:
    from homeport.audit.severity import SARIF_LEVEL, SECURITY_SCORE

    assert SARIF_LEVEL[sev] in ("note", "warning", "error")  # type: ignore[index]
    assert 0.0 <= float(SECURITY_SCORE[sev]) <= 10.0  # type: ignore[index]
