"""The rules' literal pre-filters are current and sound."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from homeport.explain._needles import NEEDLES
from homeport.explain.prefilter import derive, render
from homeport.explain.rules import RULES

ERRORS = Path(__file__).parent.parent / "fixtures" / "errors"
GENERATED = Path(__file__).parents[2] / "src/homeport/explain/_needles.py"


def _texts() -> list[str]:
    cases = tomllib.loads((ERRORS / "cases.toml").read_text())["case"]
    return [(ERRORS / c["file"]).read_text() if "file" in c else c["text"] for c in cases]


def test_the_generated_table_is_current() -> None:
    want = {r.id: derive(r.pattern, r.flags) for r in RULES if derive(r.pattern, r.flags)}
    assert want == NEEDLES, "rerun: python -m homeport.explain.prefilter && make fmt"
    assert "NEEDLES" in render()
    assert GENERATED.is_file()


def test_every_match_contains_a_needle() -> None:
    texts = _texts()
    for rule in RULES:
        needles = NEEDLES.get(rule.id)
        if not needles:
            continue
        for text in texts:
            if rule.compiled().search(text):
                assert any(n in text.lower() for n in needles), (rule.id, text[:80])


def test_derive_reads_sequences_alternations_and_groups() -> None:
    assert derive(r"connect ECONNREFUSED \d+") == ("connect econnrefused ",)
    assert derive(r"ECONNREFUSED|connection refused", re.I) == (
        "connection refused",
        "econnrefused",
    )
    assert derive(r"(?:Failed to connect) to \S+") == ("failed to connect to ",)
    assert derive(r"(?P<x>Failed to connect)\d") == ("failed to connect",)
    assert derive(r"a|\d+") == ()  # a branch with no literal: no filter
    assert derive(r"x?y") == ()  # too short to filter
