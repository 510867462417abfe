"""Linear time, made structural: the rules only ever see a bounded text.

No timing assert: the bounds are checked on the text itself (no line over ``LINE_CAP``,
no more than ``WINDOW`` in all), and every shape of a 1 MB input is read through the
whole parser (the per-test timeout is the only clock).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeport.errors import UsageError
from homeport.explain import extract
from homeport.explain.parse import parse_input
from homeport.explain.rules import RULES
from homeport.explain.window import LINE_CAP, OVERLAP, WINDOW, cap_lines, focus, pieces

MB = 1_000_000

#: A long token of every character class the rules and the extractor use.
SHAPES = {
    "letters": "x",
    "digits": "1",
    "base64": "QWxhZGRpbjpvcGVu+/=",
    "colons": "a:",
    "dotted": "1.",
    "ipv6": "::1:",
    "quotes": "'a\"",
    "slashes": "/a",
    "host-ports": "a.b:1 ",
    "parens": "(1) ",
    "brackets": "[::1]",
    "pipes": "|1|:",
    "urls": "http://",
    "spaces": "a ",
    "unicode": "é€",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.",
}


def _long(unit: str, size: int = MB) -> str:
    return (unit * (size // len(unit) + 1))[:size]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 5000), min_size=1, max_size=60), st.sampled_from(sorted(SHAPES)))
def test_focus_bounds_every_line_and_the_whole(lengths: list[int], shape: str) -> None:
    text = "\n".join(_long(SHAPES[shape], n) for n in lengths)
    seen = focus(text)
    assert len(seen) <= WINDOW
    assert all(len(line) <= LINE_CAP for line in seen.split("\n"))


def test_pieces_overlap_so_no_short_phrase_is_cut() -> None:
    phrase = "connect ECONNREFUSED 127.0.0.1:3000"
    assert len(phrase) < OVERLAP
    for offset in range(0, 3 * LINE_CAP, 37):
        line = "x" * offset + phrase + "y" * 3000
        assert any(phrase in p for p in pieces(line)), offset


def test_capping_keeps_short_texts_as_they_are() -> None:
    text = "line one\nError: connect ECONNREFUSED ::1:3000\n"
    assert cap_lines(text) == text == focus(text)


def test_a_long_log_is_cut_around_its_last_error() -> None:
    noise = "".join(f"GET /item/{i} 200 12ms\n" for i in range(60_000))
    text = noise + "Error: connect ECONNREFUSED 127.0.0.1:4321\n" + "npm ERR! exit 1\n"
    assert len(text) > MB
    p = parse_input(text)
    assert (p.kind, p.host, p.port) == ("refused", "127.0.0.1", 4321)
    assert len(p.text) <= WINDOW


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_megabyte_of_one_token_is_read_through_the_whole_parser(shape: str) -> None:
    text = _long(SHAPES[shape]) + " connect ECONNREFUSED 127.0.0.1:4321"
    p = parse_input(text)
    assert p.kind == "refused"
    assert len(p.text) <= WINDOW  # what every later regex (conn, facts) reads


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_regex_runs_on_a_capped_line_of_every_shape(shape: str) -> None:
    line = _long(SHAPES[shape], LINE_CAP)
    for rule in RULES:
        rule.compiled().search(line)
    for _form, pattern in extract.PATTERNS:
        list(pattern.finditer(line))
    with pytest.raises(UsageError):
        parse_input(_long(SHAPES[shape]) if shape != "host-ports" else "x" * MB)


def test_an_error_before_a_long_blob_is_kept() -> None:
    import base64
    import random

    rnd = random.Random(13)
    blob = base64.b64encode(rnd.randbytes(800_000)).decode()
    # a failure word inside the blob, as random base64 holds them now and then
    text = "connect ECONNREFUSED 127.0.0.1:4321 " + blob[:500_000] + " fail " + blob[500_000:]
    p = parse_input(text)
    assert (p.kind, p.host, p.port) == ("refused", "127.0.0.1", 4321)
    assert len(p.text) <= WINDOW
