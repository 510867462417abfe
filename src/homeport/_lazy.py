"""PEP 562 lazy names, for the packages whose public names load on first use
(``homeport``, ``homeport.ports``, ``homeport.inventory``): importing the package stays
cheap, and a name costs its module's import only when it is first used."""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, MutableMapping


def load(
    package: str, namespace: MutableMapping[str, object], exports: Mapping[str, str], name: str
) -> object:
    """``name`` from the module ``exports`` maps it to, kept in ``namespace`` (the package's
    globals) so the next lookup does not come back here."""
    module = exports.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    namespace[name] = value
    return value
