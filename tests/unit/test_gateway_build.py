"""``homeport.gateway.build()``: whether the proxy's hot path runs compiled (issue 9)."""

from __future__ import annotations

import importlib.machinery
import os

from homeport import gateway
from homeport.gateway import proxy


def test_build_names_how_the_proxy_runs() -> None:
    """Asked of the module's loader, not of its file name: an extension module is mypyc's.
    ``make test-compiled`` sets HOMEPORT_EXPECT_BUILD=mypyc, so a build that fell back to
    pure Python fails there instead of testing the pure modules twice."""
    compiled = isinstance(proxy.__loader__, importlib.machinery.ExtensionFileLoader)
    assert gateway.build() == ("mypyc" if compiled else "python")
    if expected := os.environ.get("HOMEPORT_EXPECT_BUILD"):
        assert gateway.build() == expected
