"""Explain an address, a URL or a pasted error message, for this machine, now.

::

    from homeport.explain import explain
    e = explain("connect ECONNREFUSED ::1:3000")
    e.diagnosis[0].summary, e.next_steps, e.to_json()

The pieces: ``rules`` (patterns and templates, data), ``parse`` (text -> ``Parsed``, pure),
``facts`` (the edge that reads the machine), ``sections`` and ``diagnose`` (pure).
"""

from __future__ import annotations

from homeport.explain.diagnose import Explanation, Finding, diagnose
from homeport.explain.facts import Facts, Resolution, gather
from homeport.explain.parse import Parsed, parse_input

__all__ = [
    "Explanation",
    "Facts",
    "Finding",
    "Parsed",
    "Resolution",
    "diagnose",
    "explain",
    "explain_text",
    "gather",
    "parse_input",
]


def explain(text: str, at: str | None = None) -> Explanation:
    """Parse ``text`` (``at`` adds or overrides HOST:PORT), read live facts, diagnose.

    Raises ``homeport.errors.UsageError`` when the text is neither an address nor a known error.
    """
    parsed = parse_input(text, at)
    return diagnose(parsed, gather(parsed))


#: The name ``homeport.__all__`` can export: ``homeport.explain`` is this package, so a
#: function of the same name there would be shadowed once the package is imported.
explain_text = explain
