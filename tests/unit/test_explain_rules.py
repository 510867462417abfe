"""Every real error text in tests/fixtures/errors goes through the rule table (table-driven)."""

from __future__ import annotations

import string
import tomllib
from pathlib import Path
from typing import Any

import pytest

from homeport.explain.parse import parse_input
from homeport.explain.rules import (
    BIND_BOTH_HINTS,
    CONNECT_HINTS,
    DEFAULT_BIND_KEY,
    DIAGNOSES,
    KINDS,
    MEANING,
    RULES,
    TEMPLATE_FIELDS,
    TOOL_NAMES,
)

ERRORS = Path(__file__).parent.parent / "fixtures" / "errors"
CASES: list[dict[str, Any]] = tomllib.loads((ERRORS / "cases.toml").read_text())["case"]


def _text(case: dict[str, Any]) -> str:
    return (ERRORS / case["file"]).read_text() if "file" in case else str(case["text"])


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_real_error_text_is_read(case: dict[str, Any]) -> None:
    p = parse_input(_text(case))
    assert (p.kind, p.tool) == (case["kind"], case["tool"])
    assert (p.host or "", p.port or 0) == (case["host"], case["port"])


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case_provenance_is_stated(case: dict[str, Any]) -> None:
    assert case["provenance"] in ("captured", "documented")
    if case["provenance"] == "captured":
        assert (ERRORS / case["file"]).is_file()
    else:
        assert case["source"]


def test_every_kind_has_a_captured_or_documented_case() -> None:
    assert {c["kind"] for c in CASES} == set(KINDS)


def test_rule_ids_are_unique() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))


def test_every_rule_tool_has_a_name_and_a_connect_hint() -> None:
    for r in RULES:
        assert r.tool in TOOL_NAMES, r.id
        assert r.tool in CONNECT_HINTS or r.kind != "refused", r.id


def _fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def test_templates_use_only_known_fields() -> None:
    for sid, t in DIAGNOSES.items():
        for line in (t.summary, *t.detail, *t.steps):
            assert _fields(line) <= TEMPLATE_FIELDS, (sid, _fields(line) - TEMPLATE_FIELDS)
    for kind in KINDS:
        assert _fields(MEANING[kind]) <= TEMPLATE_FIELDS


def test_hints_format_with_a_port_only() -> None:
    for table in (CONNECT_HINTS, BIND_BOTH_HINTS):
        for hint in table.values():
            assert _fields(hint) <= {"port"}
    assert DEFAULT_BIND_KEY in BIND_BOTH_HINTS


def test_each_kind_has_situations() -> None:
    for kind in KINDS:
        assert any(sid.startswith(kind + ".") for sid in DIAGNOSES), kind


@pytest.mark.parametrize(
    ("text", "kind", "tool"),
    [
        # older libpq (PostgreSQL <= 13), two-line form
        (
            "psql: could not connect to server: Connection refused\n\tIs the server running on"
            ' host "localhost" (::1) and accepting\n\tTCP/IP connections on port 5432?',
            "refused",
            "psql",
        ),
        ("listen tcp 127.0.0.1:8080: bind: address already in use", "in-use", "go"),
        (
            "Error: connect EADDRNOTAVAIL 127.0.0.1:80 - Local (0.0.0.0:0)",
            "not-available",
            "unknown",
        ),
        ("socket.gaierror: [Errno -2] Name or service not known", "not-found", "python"),
        ("ERR_NAME_NOT_RESOLVED", "not-found", "chrome"),
        ("TimeoutError: timed out", "timeout", "python"),
    ],
)
def test_more_forms(text: str, kind: str, tool: str) -> None:
    p = parse_input(text)
    assert (p.kind, p.tool) == (kind, tool)


def test_old_libpq_form_gives_the_address_it_tried() -> None:
    p = parse_input(
        "psql: could not connect to server: Connection refused\n\tIs the server running on"
        ' host "localhost" (::1) and accepting\n\tTCP/IP connections on port 5432?'
    )
    assert (p.host, p.name, p.port) == ("::1", "localhost", 5432)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_real_error_text_is_diagnosed_as_before(case: dict[str, Any]) -> None:
    """With no live listener, each text reaches the situation recorded for it (the captured
    texts from before issue 13 keep the ones they had: the layers under the rules change
    nothing for a text a rule already read)."""
    from homeport.explain.diagnose import diagnose
    from homeport.explain.facts import Facts

    p = parse_input(_text(case))
    assert diagnose(p, Facts(port=p.port)).diagnosis[0].id == case["situation"]
