"""Pure renderers for an ``AuditReport``: text for people, JSON (``--json``), SARIF 2.1.0.

The JSON shape (``version`` 1) is documented in ``homeport.cli.audit``. SARIF follows the
OASIS SARIF 2.1.0 standard: one run, ``tool.driver.rules`` holding every rule that fired,
each result pointing at its rule by ``ruleId`` and ``ruleIndex`` (§3.27.5–3.27.6), with a
``logicalLocation`` naming the listener and a synthetic ``artifactLocation`` URI
(``homeport-audit/tcp/127.0.0.1/6379``) because code-scanning uploads require one.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from typing import Any

from homeport import __version__
from homeport.audit.findings import RULES, Finding
from homeport.audit.identify import Identity
from homeport.audit.run import AuditReport, ListenerAudit
from homeport.audit.severity import SARIF_LEVEL, SECURITY_SCORE, SEVERITIES, Severity, rank

SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)

Style = Callable[[str, str], str]


def _plain(text: str, style: str) -> str:
    return text


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def summary(report: AuditReport) -> dict[str, Any]:
    counts = Counter(f.severity for f in report.findings)
    return {
        "listeners": len(report.listeners),
        "findings": len(report.findings),
        "by_severity": {s: counts.get(s, 0) for s in reversed(SEVERITIES)},
        "worst": report.worst,
    }


def to_json(report: AuditReport) -> dict[str, Any]:
    out = report.outside
    fw = report.firewall
    return {
        "version": 1,
        "started": _iso(report.started),
        "duration_s": round(report.duration, 3),
        "summary": summary(report),
        "outside": {
            "verified": out.verified,
            "reason": out.reason,
            "source": out.source,
            "addresses": list(out.addresses),
        },
        "firewall": None
        if fw is None
        else {
            "tool": fw.tool,
            "input_filter": fw.input_filter,
            "default_drop": fw.default_drop,
            "docker": fw.docker,
        },
        "notes": list(report.notes),
        "listeners": [x.to_json() for x in report.listeners],
        "findings": [f.to_json() for f in report.findings],
    }


# --- SARIF -------------------------------------------------------------------------------


def _sarif_rule(rule_id: str, worst: Severity) -> dict[str, Any]:
    name, text = RULES[rule_id]
    return {
        "id": rule_id,
        "name": name,
        "shortDescription": {"text": text},
        "fullDescription": {"text": text},
        "help": {"text": f"{text}. See `homeport audit --help`."},
        "defaultConfiguration": {"level": SARIF_LEVEL[worst]},
        "properties": {"tags": ["security", "network"], "security-severity": SECURITY_SCORE[worst]},
    }


def _sarif_result(f: Finding, index: int) -> dict[str, Any]:
    evidence = "\n".join(f"sent: {e.probe.strip()}\nanswer: {e.answer.strip()}" for e in f.evidence)
    text = f"{f.title}. Fix: {f.fix}" + (f"\nEvidence:\n{evidence}" if evidence else "")
    where = f"homeport-audit/{f.proto}/{f.address}/{f.port}"
    return {
        "ruleId": f.rule,
        "ruleIndex": index,
        "level": SARIF_LEVEL[f.severity],
        "message": {"text": text},
        "locations": [
            {
                "physicalLocation": {"artifactLocation": {"uri": where}},
                "logicalLocations": [{"name": f.listener, "kind": "resource"}],
            }
        ],
        "partialFingerprints": {"homeportFinding/v1": f"{f.rule}:{f.listener}"},
        "properties": {
            "severity": f.severity,
            "security-severity": SECURITY_SCORE[f.severity],
            "service": f.service,
            "owner": f.owner,
            "fix": f.fix,
            "evidence": [e.to_json() for e in f.evidence],
        },
    }


def to_sarif(report: AuditReport) -> dict[str, Any]:
    worst: dict[str, Severity] = {}
    for f in report.findings:
        if f.rule not in worst or rank(f.severity) > rank(worst[f.rule]):
            worst[f.rule] = f.severity
    rule_ids = sorted(worst)
    index = {r: i for i, r in enumerate(rule_ids)}
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "homeport",
                        "version": __version__,
                        "rules": [_sarif_rule(r, worst[r]) for r in rule_ids],
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "startTimeUtc": _iso(report.started),
                        "endTimeUtc": _iso(report.started + report.duration),
                    }
                ],
                "results": [_sarif_result(f, index[f.rule]) for f in report.findings],
            }
        ],
    }


# --- text --------------------------------------------------------------------------------

_SEV_STYLE = {"critical": "red", "high": "red", "medium": "yellow", "low": "blue", "info": "dim"}


def _service_cell(x: ListenerAudit) -> str:
    if x.listener.proto != "tcp":
        return "(udp: not probed)"
    if x.identity is None:
        return x.error or "unknown"
    ident = x.identity
    label = ident.label + (f" {ident.version}" if ident.version else "")
    if ident.service == "http" and ident.title:
        label += f" “{ident.title}”"
    return label + (" (TLS)" if ident.tls else "")


def listener_rows(report: AuditReport) -> list[list[str]]:
    rows = []
    for x in report.listeners:
        ident = x.identity
        rows.append(
            [
                f"{x.listener.address}:{x.listener.port}/{x.listener.proto}"
                if ":" not in x.listener.address
                else f"[{x.listener.address}]:{x.listener.port}/{x.listener.proto}",
                _service_cell(x),
                _auth_cell(ident),
                x.exposure.status,
                _owner(x),
            ]
        )
    return rows


def _auth_cell(ident: Identity | None) -> str:
    if ident is None:
        return "-"
    if ident.auth == "open" and ident.remote_auth == "protected":
        return "open (loopback only)"
    return ident.auth


def _owner(x: ListenerAudit) -> str:
    from homeport.audit.findings import owner_text

    return owner_text(x.listener) or "-"


def render_findings(findings: tuple[Finding, ...], style: Style = _plain) -> list[str]:
    lines: list[str] = []
    for f in findings:
        tag = style(f"{f.severity.upper():8}", _SEV_STYLE[f.severity])
        lines.append(f"{tag} {f.title}")
        who = f"{f.listener}" + (f" · {f.owner}" if f.owner else "")
        lines.append(f"         listener: {who}")
        for e in f.evidence[:2]:
            lines.append(f"         sent:     {_one_line(e.probe)}")
            lines.append(f"         answer:   {_one_line(e.answer)}")
        lines.append(f"         fix:      {f.fix}")
    return lines


def _one_line(text: str, limit: int = 110) -> str:
    flat = text.strip().replace("\r\n", "⏎ ").replace("\n", "⏎ ")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def headline(report: AuditReport) -> str:
    s = summary(report)
    parts = [f"{n} {sev}" for sev, n in s["by_severity"].items() if n]
    found = f"{s['findings']} finding{'s' if s['findings'] != 1 else ''}"
    detail = f" ({', '.join(parts)})" if parts else ""
    return (
        f"homeport audit: {s['listeners']} listener{'s' if s['listeners'] != 1 else ''}, "
        f"{found}{detail} in {report.duration:.1f}s"
    )
