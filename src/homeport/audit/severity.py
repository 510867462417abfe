"""Finding severities, ordered, with their SARIF mapping (SARIF 2.1.0 §3.27.10 ``level``;
GitHub code scanning reads ``properties.security-severity`` as a CVSS-like score)."""

from __future__ import annotations

from typing import Literal, get_args

from homeport.errors import UsageError

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)

SARIF_LEVEL: dict[Severity, str] = {
    "info": "note",
    "low": "note",
    "medium": "warning",
    "high": "error",
    "critical": "error",
}
SECURITY_SCORE: dict[Severity, str] = {
    "info": "0.0",
    "low": "3.0",
    "medium": "5.5",
    "high": "8.0",
    "critical": "9.5",
}


def rank(severity: Severity) -> int:
    return SEVERITIES.index(severity)


def at_least(severity: Severity, threshold: Severity) -> bool:
    return rank(severity) >= rank(threshold)


def bump(severity: Severity, steps: int = 1) -> Severity:
    return SEVERITIES[min(len(SEVERITIES) - 1, rank(severity) + steps)]


def parse(text: str) -> Severity:
    value = text.strip().lower()
    for s in SEVERITIES:
        if s == value:
            return s
    raise UsageError(f"unknown severity {text!r} (accepted: {', '.join(SEVERITIES)})")
