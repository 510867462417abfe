"""Explain an address, a URL or a pasted error message, for this machine, now.

::

    from homeport.explain import explain
    e = explain("connect ECONNREFUSED ::1:3000")
    e.diagnosis[0].summary, e.next_steps, e.to_json()

The pieces: ``rules`` and ``conn_templates`` (patterns and templates, data), ``parse``
(text -> ``Parsed``, pure), ``facts`` and ``probes`` (the edges that read the machine),
``sections``, ``diagnose`` and ``conn`` (pure; ``conn`` decides resets, denied and
unreachable connects).

Side effects of reading the machine, all read-only: for a reset on a port that listens on
loopback, one TLS ClientHello is sent to it (to tell a TLS port spoken to in plain text);
for a denied connect(), the cgroup2 tree is walked with BPF_PROG_QUERY; for a denied or
unreachable connect() and a loopback timeout, the firewall's rules are listed.
Names load on first use, so ``homeport doctor`` can borrow ``facts.resolve`` cheaply.
(``diagnose`` is not re-exported: it is also a submodule name, and the import system would
replace the function with the module; import it from ``homeport.explain.diagnose``.)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from homeport.explain.diagnose import Explanation

_LAZY: dict[str, str] = {
    "Explanation": "homeport.explain.diagnose",
    "Facts": "homeport.explain.facts",
    "Finding": "homeport.explain.diagnose",
    "Parsed": "homeport.explain.parse",
    "Resolution": "homeport.explain.facts",
    "gather": "homeport.explain.facts",
    "parse_input": "homeport.explain.parse",
}

__all__ = [
    "Explanation",
    "Facts",
    "Finding",
    "Parsed",
    "Resolution",
    "explain",
    "explain_text",
    "gather",
    "parse_input",
]


def explain(text: str, at: str | None = None) -> Explanation:
    """Parse ``text`` (``at`` adds or overrides HOST:PORT), read live facts, diagnose.

    Raises ``homeport.errors.UsageError`` when the text is neither an address nor a known error.
    """
    from homeport.explain.diagnose import diagnose
    from homeport.explain.facts import gather
    from homeport.explain.parse import parse_input

    parsed = parse_input(text, at)
    return diagnose(parsed, gather(parsed))


#: The name ``homeport.__all__`` can export: ``homeport.explain`` is this package, so a
#: function of the same name there would be shadowed once the package is imported.
explain_text = explain


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'homeport.explain' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
